"""Text commands: ``probgen train sentence-vae``, ``probgen poem``, ``probgen interpolate-text``."""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from . import common
from .common import CLIError, add_fit_args

__all__ = ["register"]


def register(sub) -> None:
    common.add_trainer(
        "sentence-vae",
        "sentence VAE (Bowman et al. 2016) over text: GRU encoder/decoder, KL annealing, word dropout, "
        "free bits; --kl-weight 0 trains the plain GRU language model of the same size",
        _args, _run)

    p = sub.add_parser("poem", help="write new lines (or poems) from a sentence-VAE checkpoint",
                       description="Draw codes z ~ N(0, I) and let the decoder write. With --lines L > 1 "
                                   "each poem's codes take a random walk, so its lines share a theme.")
    p.add_argument("checkpoint", help="a .pt file written by `probgen train sentence-vae`")
    p.add_argument("-n", type=int, default=5, help="number of poems (default: 5)")
    p.add_argument("--lines", type=int, default=1, help="lines per poem (default: 1)")
    p.add_argument("--coherence", type=float, default=0.8,
                   help="with --lines > 1: correlation of consecutive lines' codes in [0, 1) (default: 0.8)")
    p.add_argument("--temperature", type=float, default=1.0, help="divide the logits by T (default: 1.0)")
    p.add_argument("--greedy", action="store_true", help="most likely token at each step (variety from z only)")
    p.add_argument("--max-len", type=int, default=None, help="longest line in tokens (default: the model's)")
    p.add_argument("--allow-unk", action="store_true", help="let the decoder write <unk> (default: renormalise "
                   "over known tokens)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_poem)

    q = sub.add_parser("interpolate-text", help="walk the code space from one sentence to another",
                       description="Encode both sentences (posterior means), decode the codes on the straight "
                                   "line between them (Bowman et al. 2016, Table 8).")
    q.add_argument("checkpoint", help="a .pt file written by `probgen train sentence-vae`")
    q.add_argument("first", help="first sentence")
    q.add_argument("second", help="second sentence")
    q.add_argument("--steps", type=int, default=7, help="codes on the path, both ends included (default: 7)")
    q.add_argument("--sample", action="store_true", help="sample each line instead of greedy decoding")
    q.add_argument("--temperature", type=float, default=1.0, help="with --sample (default: 1.0)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--device", default="cpu")
    q.set_defaults(func=cmd_interpolate)


# -- probgen train sentence-vae ----------------------------------------------------------
def _args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("text (--data/--binarize do not apply; the corpus is --text)")
    g.add_argument("--text", default="sonnets",
                   help="ptb, tang, sonnets (under --data-dir / $PROBGEN_DATA_DIR), or a path to a .txt file "
                        "(one sentence per line) or chinese-poetry .json file or folder (default: sonnets)")
    g.add_argument("--level", choices=("auto", "word", "char"), default="auto",
                   help="tokens: auto = char for JSON poetry, else word (default: auto)")
    g.add_argument("--max-len", type=int, default=40,
                   help="drop longer sentences, in tokens; 0 keeps all (default: 40)")
    g.add_argument("--min-freq", type=int, default=1, help="rarer training tokens become <unk> (default: 1)")
    g.add_argument("--max-vocab", type=int, default=None, help="keep the most frequent tokens only")
    g.add_argument("--max-lines", type=int, default=None, help="train on a random subset of this many sentences")
    g.add_argument("--val-max", type=int, default=1000,
                   help="validation sentences used for early stopping and the KL log (default: 1000)")
    m = p.add_argument_group("model")
    m.add_argument("--embed-dim", type=int, default=128, help="(default: 128)")
    m.add_argument("--hidden", type=int, default=256, help="GRU state size (default: 256)")
    m.add_argument("--z-dim", type=int, default=32, help="code size (default: 32)")
    m.add_argument("--kl-weight", type=float, default=1.0,
                   help="final KL weight β (1 = ELBO); 0 = no latent code: the plain GRU language model")
    m.add_argument("--no-latent", action="store_true", help="the plain GRU language model (same as --kl-weight 0)")
    m.add_argument("--kl-anneal", choices=("logistic", "linear", "none"), default="logistic",
                   help="schedule of β over SVI steps (default: logistic, Bowman et al.)")
    m.add_argument("--anneal-steps", type=int, default=None,
                   help="steps for β to reach --kl-weight (default: half of all training steps)")
    m.add_argument("--word-dropout", type=float, default=None,
                   help="replace decoder inputs by <unk> with this probability (default: 0.25; 0 without latent)")
    m.add_argument("--free-bits", type=float, default=4.0,
                   help="KL nats per sentence left unpenalised, 0 to switch off (default: 4)")
    m.add_argument("--elbo", choices=("meanfield", "trace"), default="meanfield",
                   help="meanfield = Trace_ELBO with the Gaussian KL in closed form (default)")
    e = p.add_argument_group("evaluation after training")
    e.add_argument("--eval-samples", type=int, default=50,
                   help="importance samples K for the test log-likelihood, 0 to skip (default: 50)")
    e.add_argument("--eval-max", type=int, default=500, help="test sentences scored at most (default: 500)")
    add_fit_args(p, epochs=10, batch_size=64, lr=2e-3)


def _run(args, ds, path: Path):
    import torch

    from ..io import write_json
    from ..models.sentence_vae import SentenceVAE
    from ..textdata import load_text

    text = load_text(args.text, None if args.level == "auto" else args.level,
                     max_len=args.max_len if args.max_len and args.max_len > 0 else None,
                     min_freq=args.min_freq, max_vocab=args.max_vocab, max_lines=args.max_lines,
                     data_dir=args.data_dir, seed=args.seed)
    if args.val_max is not None and args.val_max > 0:
        text.val = text.val[:args.val_max]
    # stopgap: `probgen train` has loaded the (image) --data set for us; make its summary line name ours
    ds.describe = text.describe
    print(f"data: {text.describe()}", flush=True)
    latent = not (args.no_latent or args.kl_weight == 0)
    if args.batch_size < 1 or args.epochs < 0:  # checked before the annealing schedule divides by them
        raise ValueError(f"--batch-size must be >= 1 and --epochs >= 0, got {args.batch_size}, {args.epochs}")
    steps = max(1, args.epochs * math.ceil(len(text.train) / args.batch_size))
    word_dropout = args.word_dropout if args.word_dropout is not None else (0.25 if latent else 0.0)
    model = SentenceVAE.for_data(
        text, embed_dim=args.embed_dim, hidden=args.hidden, z_dim=args.z_dim, latent=latent,
        kl_weight=args.kl_weight if latent else 1.0, kl_anneal=args.kl_anneal,
        anneal_steps=args.anneal_steps or max(1, steps // 2), word_dropout=word_dropout,
        free_bits=args.free_bits if latent else 0.0, elbo=args.elbo)
    t0 = time.perf_counter()
    common.fit_story(model, args, text, path)
    fit_seconds = time.perf_counter() - t0
    model.eval()

    report = {"data": text.describe(), "info": text.info, "latent": latent, "fit_seconds": fit_seconds,
              "n_params": model.n_params(), "history": getattr(model, "train_result", None) and
              model.train_result.history}
    test = text.test[:args.eval_max] if args.eval_max and args.eval_max > 0 else text.test
    if len(test):
        terms = model.elbo_terms(test)
        ntok = int((test != 0).sum())
        report["test"] = {"n": len(test), "tokens": ntok, "kl": float(terms["kl"].mean()),
                          "elbo": float(terms["elbo"].mean()),
                          "ppl_elbo": float(torch.exp(-terms["elbo"].sum() / ntok))}
        if args.eval_samples > 0:
            common.seed_everything(args.seed)
            lp = model.log_prob(test, num_samples=args.eval_samples)
            report["test"].update(nll=float(-lp.mean()), ppl=model.perplexity(test, log_prob=lp),
                                  estimator="exact" if not latent else f"IWAE K={args.eval_samples}")
        t = report["test"]
        print(f"test ({t['n']} sentences): KL {t['kl']:.2f} nats, -ELBO {-t['elbo']:.2f} nats/sentence"
              + (f", NLL {t['nll']:.2f} ({t['estimator']}), perplexity {t['ppl']:.1f}" if "nll" in t else ""))
    common.seed_everything(args.seed)
    samples = model.sample(5)
    report["samples"] = samples
    print("samples:\n  " + "\n  ".join(samples))
    model.save(path, extra={k: report[k] for k in ("history", "test", "fit_seconds") if report.get(k) is not None})
    write_json(path.with_suffix(".json"), report)
    return model


# -- probgen poem / interpolate-text -----------------------------------------------------------
def _load_text_model(path: str, device: str):
    model = common.load_model(path, device=str(common.resolve_device(device)))
    if getattr(model, "kind", None) != "sentence-vae":
        raise CLIError(f"{path}: holds a {getattr(model, 'kind', '?')!r} model, not a sentence-vae")
    return model


def cmd_poem(args) -> int:
    import torch

    if args.n < 1 or args.lines < 1:
        raise CLIError(f"-n and --lines must be >= 1, got {args.n} and {args.lines}")
    if not 0 <= args.coherence < 1:
        raise CLIError(f"--coherence must be in [0, 1), got {args.coherence}")
    if not args.temperature > 0:
        raise CLIError(f"--temperature must be > 0, got {args.temperature}")
    common.seed_everything(args.seed)
    model = _load_text_model(args.checkpoint, args.device)
    kw = dict(temperature=args.temperature, greedy=args.greedy, max_len=args.max_len, allow_unk=args.allow_unk)
    with torch.no_grad():
        if not model.latent or args.lines == 1:
            lines = model.sample(args.n * args.lines, **kw)
            poems = [lines[i * args.lines:(i + 1) * args.lines] for i in range(args.n)]
        else:
            # a stationary random walk in code space: every z is N(0, I), neighbours are correlated
            c = args.coherence
            z = [torch.randn(args.n, model.z_dim, device=model.device)]
            for _ in range(args.lines - 1):
                z.append(c * z[-1] + math.sqrt(1 - c * c) * torch.randn_like(z[-1]))
            z = torch.stack(z, dim=1).reshape(-1, model.z_dim)  # [n * lines, z]
            lines = model.sample(len(z), z=z, **kw)
            poems = [lines[i * args.lines:(i + 1) * args.lines] for i in range(args.n)]
    print(("\n\n" if args.lines > 1 else "\n").join("\n".join(p) for p in poems))
    return 0


def cmd_interpolate(args) -> int:
    import torch

    if args.steps < 2:
        raise CLIError(f"--steps must be >= 2, got {args.steps}")
    common.seed_everything(args.seed)
    model = _load_text_model(args.checkpoint, args.device)
    if not model.latent:
        raise CLIError(f"{args.checkpoint}: a plain language model (no latent code) cannot interpolate")
    for s, name in ((args.first, "first"), (args.second, "second")):
        if not s.strip():
            raise CLIError(f"the {name} sentence is empty")
        if model.vocab is not None:
            unknown = [t for t in model.vocab.tokenize(s) if t not in model.vocab]
            if unknown:
                print(f"note: not in the vocabulary (read as <unk>): {' '.join(unknown[:10])}")
    with torch.no_grad():
        lines = model.interpolate(args.first, args.second, args.steps, greedy=not args.sample,
                                  temperature=args.temperature)
    width = len(f"{1:.2f}")
    print(f"{'a':>{width}}  {args.first}")
    for t, line in zip(torch.linspace(0, 1, args.steps).tolist(), lines):
        print(f"{t:>{width}.2f}  {line}")
    print(f"{'b':>{width}}  {args.second}")
    return 0
