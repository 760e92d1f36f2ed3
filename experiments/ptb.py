"""The Penn Treebank table: the sentence VAE and a GRU language model of the same size, beside
Bowman et al. (2016, "Generating Sentences from a Continuous Space").

Mikolov's PTB split (42,068 / 3,370 / 3,761 sentences, 10k words, ``$PROBGEN_DATA_DIR/ptb``), every
sentence kept (no length cut), ``<eos>`` counted as a token. Each row trains through the
``sentence-vae`` recipe within ``--minutes`` per invocation, checkpointing every epoch under
``--work`` and resuming there; ``--minutes 0`` only scores. Scores on the test sentences: NLL per
sentence (exact for the language model, IWAE with K = ``--eval-samples`` for the VAE, by
:func:`probgen.evaluate.score`), the −ELBO and KL (closed form), and the perplexity
exp(Σ NLL / Σ tokens). Rows are merged by name into ``OUT/table.json`` and ``OUT/table.md``.

    python experiments/ptb.py --models lm,vae --minutes 30 --epochs 10     # train / resume
    python experiments/ptb.py --models vae --minutes 0 --eval-samples 20   # score only
    python experiments/ptb.py --quick                                      # smoke test, seconds
"""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling _common.py, however this file is run
from _common import (WALL_HOURS, add_run_flags, settle_folders, chosen_rows, experiment_parser, folders, history_of,  # noqa: E402
                     measured_on, need_checkpoints, train_seconds, wall_hours)

ROWS = ("lm", "vae")
FAMILY = {"lm": "GRU language model (the sentence VAE's decoder, no code): exact",
          "vae": "sentence VAE (GRU encoder/decoder, KL annealing, word dropout, free bits)"}
#: Bowman et al. 2016, Table 2 (test set; perplexities as issue 17 cites them)
PUBLISHED = {"lm": {"model": "LSTM language model (Bowman et al. 2016)", "ppl": 116},
             "vae": {"model": "VAE (Bowman et al. 2016)", "ppl": 119}}

#: the status of a row not trained yet: its measured cost (the VAE's first epoch, one thread, 2026-12-01)
NOT_RUN = ("not run yet: one epoch of the 42k training sentences ≈ 34 min wall on cpu×1 (a shared machine; "
           "12.5 min on a quiet thread)")


def _config(name: str, args):
    from probgen.recipes.text import SentenceVAEConfig

    size = dict(embed_dim=16, hidden=32, z_dim=4, max_lines=300, val_max=100, max_vocab=500) if args.quick else {}
    return SentenceVAEConfig(text="ptb", max_len=0, min_freq=1, epochs=args.epochs, patience=None, resume=True,
                             minutes=max(args.minutes, 1e-3), kl_weight=0.0 if name == "lm" else 1.0,
                             eval_samples=0, eval_max=1, **size)


def train_row(name: str, args, work: Path):
    """Train (or resume; ``--minutes 0``: load) row ``name``; returns ``(model, text data)``."""
    import probgen
    from probgen.recipes.config import DataConfig, RunConfig, seed_everything
    from probgen.recipes.models import model_spec
    from probgen.recipes.train import train_model

    cfg, data = _config(name, args), DataConfig(data_dir=args.data_dir, seed=args.seed)
    text = model_spec("sentence-vae").load(cfg, data)
    path = work / f"{name}.pt"
    if args.minutes <= 0:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no checkpoint to score (train with --minutes > 0 first)")
        return probgen.load(path, device=args.device), text
    seed_everything(args.seed)
    run = RunConfig(out=str(work), seed=args.seed, device=args.device, quiet=args.quiet)
    return train_model("sentence-vae", cfg, data, run, text, path=path).model, text


def score_row(model, test: torch.Tensor, *, k: int, seed: int) -> dict:
    """NLL per sentence (the one scoring policy), −ELBO and KL, perplexities."""
    from probgen.evaluate import score, summarize
    from probgen.recipes.config import seed_everything

    model.eval()
    seed_everything(seed)
    t0 = time.perf_counter()
    with torch.no_grad():
        s = score(model, test.to(model.device), num_samples=k)
        terms = model.elbo_terms(test.to(model.device))
    tokens = int((test != 0).sum())  # words and <eos>, no padding
    res = summarize(s.values)
    return {"nll": -res.mean, "stderr": res.stderr, "n_test": res.n, "tokens": tokens, "estimator": s.estimator,
            "k": s.k, "khat_share": s.khat_share, "ppl": math.exp(-float(s.values.sum()) / tokens),
            "neg_elbo": -float(terms["elbo"].mean()), "kl": float(terms["kl"].mean()),
            "ppl_elbo": math.exp(-float(terms["elbo"].sum()) / tokens), "eval_seconds": time.perf_counter() - t0}


def write_table(out: Path, rows: dict, meta: dict) -> None:
    from probgen.io import atomic_write, write_json

    rows = {n: rows[n] for n in sorted(rows, key=lambda n: ROWS.index(n) if n in ROWS else 99)}
    write_json(out / "table.json", {**meta, "rows": list(rows.values())})
    lines = ["# Penn Treebank (Mikolov's split): test NLL per sentence (nats), lower is better", "",
             "| model | test NLL ± s.e. | estimator | −ELBO | KL | perplexity | sentences | epochs "
             "| train wall-h (device) | status | published perplexity |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows.values():
        est = (r.get("estimator") or "—") + (f" K={r['k']}" if r.get("k") else "")
        pub = PUBLISHED.get(r["name"], {}).get("ppl")
        lines.append(f"| {r['name']} | {r['nll']:.2f} ± {r['stderr']:.2f} | {est} | {r['neg_elbo']:.2f} | "
                     f"{r['kl']:.2f} | {r['ppl']:.1f} | {r['n_test']} | {r['epochs']} | {wall_hours(r)} | "
                     f"{r['status']} | {pub or '—'} |")
    for name in ROWS:  # a row not trained yet is listed, never with a number
        if name not in rows:
            lines.append(f"| {name} | — | — | — | — | — | — | — | — | {NOT_RUN} "
                         f"| {PUBLISHED[name]['ppl']} |")
    lines += ["", "Published (Bowman et al. 2016, Table 2, test): " + "; ".join(
        f"{p['model']}: perplexity {p['ppl']}" for p in PUBLISHED.values()),
        "", "Perplexity = exp(Σ NLL / Σ tokens), every sentence's <eos> counted; the VAE's NLL is an IWAE estimate "
        "(a bound that tightens with K), its −ELBO the K=1 bound.",
        f"probgen {meta['probgen_version']}; seed {meta['seed']}; {WALL_HOURS}."]
    if meta.get("quick"):
        lines.insert(1, "\n**quick smoke run, tiny models on 300 sentences: not a result**")
    atomic_write(out / "table.md", lambda f: f.write("\n".join(lines) + "\n"), mode="w")


def main(argv=None) -> int:
    ap = experiment_parser(__doc__, ROWS)
    ap.add_argument("--epochs", type=int, default=10, help="epochs in all (sets the KL annealing schedule)")
    ap.add_argument("--eval-samples", type=int, default=20, help="importance samples K per test sentence (VAE)")
    ap.add_argument("--test-size", type=int, default=0, help="score the first N test sentences (0: all 3,761)")
    add_run_flags(ap, work="runs/ptb", out="experiments/results/ptb", outputs="table.md, table.json, curves",
                  quick="tiny models on 300 sentences, seconds")
    args = settle_folders(ap.parse_args(argv))
    names = chosen_rows(ap, args, ROWS)
    for flag, low in (("epochs", 1), ("eval_samples", 1), ("test_size", 0)):
        if getattr(args, flag) < low:
            ap.error(f"--{flag.replace('_', '-')} must be >= {low}")
    if args.quick:
        args.epochs, args.minutes, args.eval_samples, args.test_size = 1, 0.1, 3, 40
    torch.set_num_threads(1)

    from probgen import __version__
    from probgen.io import write_json

    folders(ap, make=False, work=args.work, out=args.out)
    need_checkpoints(ap, args.minutes, Path(args.work), names)
    work, out = folders(ap, work=args.work, out=args.out)
    table = out / "table.json"
    rows = {r["name"]: r for r in json.loads(table.read_text())["rows"]} if table.is_file() else {}
    for name in names:
        try:
            model, text = train_row(name, args, work)
        except (ValueError, FileNotFoundError) as e:
            ap.exit(2, f"ptb.py: error: {e}\n")
        test = text.test[:args.test_size] if args.test_size else text.test
        hist = history_of(work / f"{name}.pt")
        write_json(out / f"curve_{name}.json", {"name": name, "history": hist})
        secs = train_seconds(hist)
        row = {"name": name, "family": FAMILY[name], **score_row(model, test, k=args.eval_samples, seed=args.seed),
               "n_params": model.n_params(), "epochs": len(hist), "train_wall_seconds": secs,
               "train_wall_hours": secs / 3600, "device": args.device, "torch_threads": torch.get_num_threads(),
               "seed": args.seed, "probgen_version": __version__,
               "data": text.describe(), "published_ppl": PUBLISHED[name]["ppl"], "curve": f"curve_{name}.json"}
        row["status"] = "quick smoke run: not a result" if args.quick else \
            f"budget-limited: {len(hist)} of {args.epochs} epochs" if len(hist) < args.epochs else \
            f"{len(hist)} epochs (the planned number)"
        rows[name] = row
        print(f"{name}: NLL {row['nll']:.2f} ± {row['stderr']:.2f} nats/sentence ({row['estimator']}), "
              f"KL {row['kl']:.2f}, perplexity {row['ppl']:.1f}, {len(hist)} epochs, {secs / 60:.1f} train wall-min on "
              f"{measured_on(row)}, scored in {row['eval_seconds']:.0f} s wall", flush=True)
    if table.is_file():  # another invocation may have written rows meanwhile: keep them
        rows = {**{r["name"]: r for r in json.loads(table.read_text())["rows"]},
                **{n: r for n, r in rows.items() if n in names}}
    write_table(out, rows, {"data": "ptb (Mikolov's split, all sentences)", "probgen_version": __version__,
                            "seed": args.seed, "quick": args.quick})
    print((out / "table.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
