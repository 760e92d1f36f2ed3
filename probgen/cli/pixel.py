"""Autoregressive pixel models on the command line.

``probgen train pixelcnn|pixelrnn`` fit a Gated PixelCNN or a PixelRNN (Row LSTM) by exact
maximum likelihood; ``probgen sample CKPT [--label K] [--temperature T]`` draws pixel by pixel;
``probgen complete CKPT --index I --rows K`` keeps the top K rows of test image I and lets
the model draw the rest. In ``probgen compare`` their log-likelihood is exact.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from . import common
from .common import CLIError, add_fit_args, add_trainer

__all__ = ["register", "cmd_complete"]

BACKBONE = {"pixelcnn": "gated", "pixelrnn": "rowlstm"}


def register(sub) -> None:
    add_trainer("pixelcnn", "Gated PixelCNN (vertical + horizontal masked stacks, no blind spot), exact "
                "log-likelihood, maximum likelihood by SVI with an empty guide",
                _args(layers=5), _runner("pixelcnn"))
    add_trainer("pixelrnn", "PixelRNN with Row LSTM layers (one image row per LSTM step), exact "
                "log-likelihood, maximum likelihood by SVI with an empty guide",
                _args(layers=2), _runner("pixelrnn"))
    from .spine import add_compare_evaluator

    add_compare_evaluator("pixelcnn", _compare_evaluate)
    add_compare_evaluator("pixelrnn", _compare_evaluate)

    c = sub.add_parser("complete", help="keep the top rows of test images, let a pixel model draw the rest",
                       description="Image completion: keep the top --rows rows of test image(s) --index and "
                                   "draw the remaining pixels from the model, -n times each. Each grid row: "
                                   "original, the kept rows (rest grey), then the completions.")
    c.add_argument("checkpoint", help="a pixelcnn/pixelrnn .pt file written by probgen")
    c.add_argument("--index", type=int, nargs="+", default=[0], help="test image index(es) (default: 0)")
    c.add_argument("--rows", type=int, default=None, help="rows to keep (default: half the image)")
    c.add_argument("-n", type=int, default=8, help="completions per image (default: 8)")
    c.add_argument("--split", choices=("test", "val", "train"), default="test", help="(default: test)")
    c.add_argument("--data", default=None, help="data set (default: the one the checkpoint was trained on)")
    c.add_argument("--data-dir", default=None, help="folder with the benchmark data")
    c.add_argument("--label", type=int, default=None,
                   help="class to complete as (conditional models; default: the image's own label)")
    c.add_argument("--temperature", type=float, default=1.0, help="divide the logits by T (default: 1)")
    c.add_argument("--out", default="complete.png", help="PNG file (default: complete.png)")
    c.add_argument("--npy", default=None, help="also save the completions, [images, n, H, W]")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--device", default="cpu")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.set_defaults(func=cmd_complete)


# -- trainers ----------------------------------------------------------------------------
def _args(*, layers: int):
    def add(p: argparse.ArgumentParser) -> None:
        p.add_argument("--channels", type=int, default=32, help="feature maps (default: 32)")
        p.add_argument("--n-layers", type=int, default=layers, help=f"gated blocks / LSTM layers (default: {layers})")
        p.add_argument("--kernel-size", type=int, default=3, help="odd kernel of the later layers (default: 3)")
        p.add_argument("--first-kernel", type=int, default=7, help="odd kernel of the mask-A layer (default: 7)")
        p.add_argument("--likelihood", choices=("auto", "bernoulli", "categorical"), default="auto",
                       help="auto: bernoulli for binary data, else a softmax over grey levels")
        p.add_argument("--levels", type=int, default=None,
                       help="grey levels of the categorical likelihood (default: the data's, e.g. 17 for digits)")
        p.add_argument("--conditional", action="store_true",
                       help="class-conditional (needs labels; then `probgen sample --label K`)")
        add_fit_args(p, epochs=30, batch_size=64, lr=2e-3)

    return add


def _runner(name: str):
    def run(args, ds, path: Path):
        from ..models import PixelModel

        if len(ds.shape) != 2:
            raise CLIError(f"{ds.name}: a pixel model needs images [H, W], got examples of shape {list(ds.shape)}")
        likelihood = args.likelihood
        if likelihood == "auto":
            likelihood = "bernoulli" if ds.binarized else "categorical"
        if likelihood == "bernoulli" and not ds.binarized:
            raise CLIError("--likelihood bernoulli needs binary images: add --binarize")
        if args.conditional and ds.train_labels is None:
            raise CLIError(f"--conditional: {ds.name} has no labels")
        levels = args.levels or ds.levels or 256
        model = PixelModel(BACKBONE[name], shape=list(ds.shape), channels=args.channels, n_layers=args.n_layers,
                           kernel_size=args.kernel_size, first_kernel=args.first_kernel, likelihood=likelihood,
                           levels=levels, n_classes=ds.n_classes if args.conditional else None)
        model = common.fit_story(model, args, ds, path, labels=args.conditional)
        history = getattr(getattr(model, "train_result", None), "history", [])
        model.save(path, extra={"data": args.data, "binarized": ds.binarized, "history": history})
        return model

    return run


def _compare_evaluate(model, ds, args):
    """Exact test log-likelihood; for dequantized data the density of the dequantized pixels."""
    import torch

    y = ds.test_labels if getattr(model, "needs_labels", False) else None
    with torch.no_grad():
        values = model.log_prob(ds.test, y).cpu()
    if ds.dequantized and model.likelihood == "categorical":
        # uniform within each grey level's bin of width 1/levels: log p(x) = log P(level) + D log levels
        values = values + math.prod(model.shape) * math.log(model.levels)
    return values, "exact", None


# -- complete ----------------------------------------------------------------------------
def cmd_complete(args) -> int:
    import numpy as np
    import torch

    from ..data import load
    from ..io import atomic_write

    model = common.load_for_sampling(args)
    if not hasattr(model, "complete"):
        raise CLIError(f"{args.checkpoint}: a {model.kind} checkpoint cannot complete images (train pixelcnn "
                       "or pixelrnn)")
    extra = getattr(model, "checkpoint_extra", {}) or {}
    data = args.data or extra.get("data") or "digits"
    ds = load(data, args.data_dir, binarize=model.likelihood == "bernoulli", seed=args.seed)
    images = getattr(ds, args.split)
    labels = getattr(ds, f"{args.split}_labels")
    bad = [i for i in args.index if not 0 <= i < len(images)]
    if bad:
        raise CLIError(f"--index {bad[0]}: the {args.split} split has {len(images)} images (0..{len(images) - 1})")
    h, w = model.shape
    rows = h // 2 if args.rows is None else args.rows
    if not 0 <= rows <= h:
        raise CLIError(f"--rows must lie in 0..{h}, got {rows}")
    y = None
    if model.needs_labels:
        if args.label is not None:
            y = torch.full((len(args.index) * args.n,), args.label, dtype=torch.long)
        elif labels is None:
            raise CLIError(f"{ds.name} has no labels: pass --label K for this conditional model")
        else:
            y = labels[args.index].repeat_interleave(args.n)
    elif args.label is not None:
        raise CLIError("--label: this pixel model is not class-conditional")
    x = images[args.index]  # [m, H, W]
    out = model.complete(x.repeat_interleave(args.n, 0), rows, y=y, temperature=args.temperature,
                         progress=not args.quiet).cpu()
    out = out.reshape(len(args.index), args.n, h, w)
    kept = x.clone()
    kept[:, rows:] = 0.5  # grey where the model has to draw
    grid = torch.cat([x[:, None], kept[:, None], out], dim=1).reshape(-1, h, w)
    common.save_images(grid, args.out, nrow=args.n + 2)
    if args.npy:
        arr = out.numpy()
        atomic_write(args.npy, lambda f: np.save(f, arr))
    print(f"completed {len(args.index)} {args.split} image(s) from row {rows} ({args.n} draws each) -> {args.out}"
          + (f" and {args.npy}" if args.npy else ""))
    return 0
