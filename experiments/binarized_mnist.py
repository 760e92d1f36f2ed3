"""The binarized-MNIST likelihood table: probgen's models beside the published numbers.

Trains each model on the Larochelle & Murray split (50k train / 10k valid / 10k test)
within a time budget, selects by validation loss, then touches the test set once per
final model and writes ``likelihood_table.md`` and ``likelihood_table.json``.

Long runs can be split: every model checkpoints each epoch, and a second invocation
with the same ``--out`` resumes where the last one stopped (``--minutes`` is the budget
*per invocation and model*).

    python experiments/binarized_mnist.py --minutes 20                 # gmm (K=500) + vae
    python experiments/binarized_mnist.py --models gmm,vae,pixelcnn --device cuda
    python experiments/binarized_mnist.py --quick                      # smoke test, seconds

Test images: the test split is sorted by class, so ``--test-subset N`` draws N of
them at random (default 1000 on CPU; ``--test-subset 0`` = all 10,000).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from probgen.data import load
from probgen.evaluate import PUBLISHED, score, summarize
from probgen.io import atomic_write, last_path, load_checkpoint, write_json
from probgen.recipes.config import RunConfig, replace_given, seed_everything
from probgen.recipes.models import MODELS, model_spec
from probgen.recipes.train import train_model

# per model: options laid over the family's defaults (probgen.recipes.models) for the full run / for --quick
SETTINGS = {
    "gmm": ({"n_components": 500}, {"n_components": 10, "max_iter": 5}),
    "gmm10": ({"n_components": 10}, {"n_components": 3, "max_iter": 3}),
    "vae": ({"z_dim": 50, "hidden": "400", "batch_size": 100, "lr": 1e-3, "patience": 20},
            {"z_dim": 4, "hidden": "32", "batch_size": 256}),
}
PUBLISHED_FOR = {"gmm": "mixture of Bernoullis, K=500", "vae": "VAE, 1 stochastic layer (k=1 training)",
                 "pixelcnn": "PixelCNN", "pixelrnn": "PixelRNN (Row LSTM)"}


def _base(name: str) -> str:
    return "gmm" if name.startswith("gmm") else name


def _params(name: str, quick: bool):
    """The family's config: its defaults, this table's settings, resuming from OUT/<name>.last.pt."""
    full, small = SETTINGS.get(name, ({}, {}))
    return replace_given(model_spec(_base(name)).config(), resume=True, **(small if quick else full))


def _epochs_done(path: Path) -> int:
    """Epochs already in ``<path>.last.pt`` (0 when there is none)."""
    last = last_path(path)
    if not last.is_file():
        return 0
    payload = load_checkpoint(last)
    state = payload.get("trainer") or payload.get("extra") or {}
    return int(state.get("epoch", -1)) + 1


def score_subset(model, test, test_y, k: int, seed: int):
    """The one scoring policy (:func:`probgen.evaluate.score`) on the chosen test images, seeded as
    ``probgen compare`` seeds it (the same number for the same checkpoint and seed)."""
    model.eval()
    seed_everything(seed)
    y = test_y if getattr(model, "needs_labels", False) else None
    with torch.no_grad():
        return score(model, test.to(model.device), y=y, num_samples=k)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=20.0, help="training budget per model (default: 20)")
    ap.add_argument("--models", default="gmm,vae", help="comma-separated: gmm (K=500), gmm10, vae, "
                    "and any other `probgen train` model (default: gmm,vae)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--data-dir", default=None, help="default: $PROBGEN_DATA_DIR")
    ap.add_argument("--iwae-k", type=int, default=5000, help="importance samples for the VAE (default: 5000)")
    ap.add_argument("--test-subset", type=int, default=None,
                    help="random test images to score (default: 1000 on CPU, all on CUDA; 0 = all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/binarized_mnist")
    ap.add_argument("--quick", action="store_true", help="tiny models, 2k training images, seconds")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    model_spec("gmm")  # imports every family, so that MODELS is complete
    for name in names:
        if _base(name) not in MODELS:
            ap.error(f"unknown model {name!r}; known: {', '.join(['gmm10', *MODELS])}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    run = RunConfig(out=str(out), seed=args.seed, device=args.device, quiet=args.quiet)
    seed_everything(args.seed)
    ds = load("binarized-mnist", args.data_dir, seed=args.seed)
    if args.quick:
        ds.train, ds.val = ds.train[:2000], ds.val[:500]
        if ds.train_labels is not None:
            ds.train_labels, ds.val_labels = ds.train_labels[:2000], ds.val_labels[:500]
    subset = args.test_subset
    if subset is None:
        subset = 200 if args.quick else (0 if args.device.startswith("cuda") else 1000)
    g = torch.Generator().manual_seed(args.seed)
    idx = torch.randperm(len(ds.test), generator=g)[:subset] if subset else torch.arange(len(ds.test))
    test = ds.test[idx]  # random: the split is sorted by class
    test_y = ds.test_labels[idx] if ds.test_labels is not None else None
    k = 20 if args.quick else args.iwae_k

    rows = []
    for name in names:
        base, params = _base(name), _params(name, args.quick)
        path = out / f"{name}.pt"
        budget = 5 if args.quick else args.minutes * 60
        t0 = time.perf_counter()
        if base == "gmm" or not hasattr(params, "epochs"):
            model = train_model(base, params, None, run, ds, path=path).model
        else:
            # one epoch to time it, then as many as the budget allows (resuming each time)
            done = _epochs_done(path)
            model = train_model(base, replace_given(params, epochs=done + 1), None, run, ds, path=path).model
            per_epoch = max(time.perf_counter() - t0, 1e-3)
            extra_epochs = int((budget - per_epoch) // per_epoch)
            stopped = getattr(getattr(model, "train_result", None), "stopped_early", False)
            if extra_epochs > 0 and not stopped:
                params = replace_given(params, epochs=done + 1 + extra_epochs)
                model = train_model(base, params, None, run, ds, path=path).model
        minutes = (time.perf_counter() - t0) / 60
        t1 = time.perf_counter()
        s = score_subset(model, test, test_y, k, args.seed)
        res = summarize(s.values)
        pub = next((p for p in PUBLISHED["binarized-mnist"] if p["model"] == PUBLISHED_FOR.get(name)), None)
        rows.append({"model": name, "nll": -res.mean, "stderr": res.stderr,
                     "estimator": s.estimator + (f" k={s.k}" if s.k else ""), "khat_share": s.khat_share,
                     "n_test": res.n, "train_minutes_this_run": minutes, "eval_seconds": time.perf_counter() - t1,
                     "device": args.device, "n_params": model.n_params(),
                     "published_nll": pub["nll"] if pub else None, "published_source": pub["source"] if pub else None})
        print(f"{name}: NLL {-res.mean:.2f} ± {res.stderr:.2f} nats ({rows[-1]['estimator']}, "
              f"{res.n} test images), trained {minutes:.1f} min" + (f"; warning: {s.warning}" if s.warning else ""),
              flush=True)

    lines = ["# Binarized MNIST: test negative log-likelihood (nats, lower is better)", "",
             f"Test images: {len(test)} of 10,000 drawn at random (seed {args.seed})"
             + (" — **quick smoke run, tiny models: not a result**" if args.quick else ""), "",
             "| model | NLL | ± s.e. | estimator | train min (this run) | device | params | published | source |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        pub = f"{r['published_nll']:.2f}" if r["published_nll"] else "—"
        lines.append(f"| {r['model']} | {r['nll']:.2f} | {r['stderr']:.2f} | {r['estimator']} | "
                     f"{r['train_minutes_this_run']:.1f} | {r['device']} | {r['n_params']} | {pub} | "
                     f"{r['published_source'] or ''} |")
    lines += ["", "Published anchors on the same split:", ""]
    lines += [f"- {p['model']}: {p['nll']:.2f} — {p['source']}" for p in PUBLISHED["binarized-mnist"]]
    atomic_write(out / "likelihood_table.md", lambda f: f.write("\n".join(lines) + "\n"), mode="w")
    write_json(out / "likelihood_table.json", {"rows": rows, "n_test": len(test), "quick": args.quick,
                                               "published": PUBLISHED["binarized-mnist"]})
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
