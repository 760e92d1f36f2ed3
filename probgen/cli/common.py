"""Shared pieces of the command line: argument conventions, data loading, errors.

Conventions for every command: ``--data``, ``--data-dir``, ``--binarize``, ``--seed``,
``--device``, ``--out``; constructor keyword arguments map to kebab-case flags
(``z_dim`` → ``--z-dim``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

__all__ = [
    "EXIT_USAGE", "CLIError", "ArgumentParser", "add_data_args", "add_run_args", "add_fit_args",
    "load_dataset", "seed_everything", "out_dir", "add_trainer", "TRAINERS", "fit_story",
    "resolve_device", "load_model", "load_for_sampling", "save_images", "parse_int_list",
]

EXIT_USAGE = 2


class CLIError(Exception):
    """A problem with the user's arguments or files: printed as one line, exit code 2."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad argument as one line (exit 2) instead of usage + error."""

    def error(self, message: str):
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        sys.exit(EXIT_USAGE)


def add_data_args(p: argparse.ArgumentParser, *, default: str = "digits", binarize_default: bool | None = True):
    """``--data NAME|PATH``, ``--data-dir DIR``, ``--binarize/--no-binarize``, ``--continuous``, ``--download``."""
    g = p.add_argument_group("data")
    g.add_argument("--data", default=default,
                   help=f"digits, mnist, binarized-mnist, frey-face, or a path to .npz/.npy/PNG folder "
                        f"(default: {default})")
    g.add_argument("--data-dir", default=None,
                   help="folder with the benchmark data (default: $PROBGEN_DATA_DIR)")
    g.add_argument("--binarize", dest="binarize", action="store_true", default=binarize_default,
                   help="threshold grey levels at 0.5" + (" (default)" if binarize_default else ""))
    g.add_argument("--no-binarize", dest="binarize", action="store_false", help="keep grey levels")
    g.add_argument("--continuous", action="store_true",
                   help="dequantize grey levels ((level + U(0,1)) / levels) for Gaussian likelihoods")
    g.add_argument("--download", action="store_true", help="allow downloading MNIST with torchvision")


def add_run_args(p: argparse.ArgumentParser, *, out: str | None):
    """``--seed``, ``--device``, ``--out``, ``--quiet``."""
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    if out is not None:
        p.add_argument("--out", default=out, help=f"output folder (default: {out})")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def add_fit_args(p: argparse.ArgumentParser, *, epochs: int = 50, batch_size: int = 128, lr: float = 1e-3):
    """``--epochs``, ``--batch-size``, ``--lr``, ``--patience``, ``--resume``, ``--clip-norm``,
    ``--distributed``."""
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, default=epochs, help=f"passes over the data (default: {epochs})")
    g.add_argument("--batch-size", type=int, default=batch_size, help=f"(default: {batch_size})")
    g.add_argument("--lr", type=float, default=lr, help=f"Adam learning rate (default: {lr})")
    g.add_argument("--patience", type=int, default=10,
                   help="early stopping: epochs without validation improvement (default: 10)")
    g.add_argument("--resume", action="store_true", help="continue from OUT/<model>.last.pt if present")
    g.add_argument("--clip-norm", type=float, default=None,
                   help="clip the global gradient norm (all parameters together) to this value")
    g.add_argument("--distributed", action="store_true",
                   help="multi-process SVI: launch with torchrun --nproc_per_node=N -m probgen train ...; "
                        "--batch-size is the global batch, split across ranks (see docs/scale.md)")


def seed_everything(seed: int) -> None:
    import random

    import numpy as np
    import pyro

    random.seed(seed)
    np.random.seed(seed % 2**32)
    pyro.set_rng_seed(seed)


def resolve_device(name: str):
    import torch

    if name.startswith("cuda") and not torch.cuda.is_available():
        raise CLIError(f"--device {name}: CUDA is not available on this machine")
    try:
        return torch.device(name)
    except RuntimeError:
        raise CLIError(f"--device {name!r}: not a device (use cpu or cuda)") from None


def load_dataset(args, *, need_labels: bool = False):
    """Load ``args.data`` with the common flags; checks labels when the model needs them."""
    from ..data import load

    if getattr(args, "continuous", False):
        ds = load(args.data, args.data_dir, binarize=False, seed=args.seed, dequantize=True,
                  download=args.download)
    else:
        ds = load(args.data, args.data_dir, binarize=args.binarize, seed=args.seed, download=args.download)
    if need_labels and ds.train_labels is None:
        raise CLIError(f"{ds.name}: this model needs labels, and the data has none")
    return ds


def out_dir(args) -> Path:
    path = Path(args.out)
    if path.exists() and not path.is_dir():
        raise CLIError(f"--out {path}: exists and is not a folder")
    path.mkdir(parents=True, exist_ok=True)
    return path


def parse_int_list(text: str, name: str) -> tuple[int, ...]:
    """``"256,128"`` → ``(256, 128)``."""
    try:
        values = tuple(int(v) for v in str(text).split(",") if v.strip())
    except ValueError:
        raise CLIError(f"{name}: expected comma-separated integers, got {text!r}") from None
    return values


# -- `probgen train MODEL`: each family registers its trainer --------------------------
TRAINERS: dict[str, Callable] = {}
_TRAIN_SUBPARSERS = []


def add_trainer(name: str, help: str, add_arguments: Callable[[argparse.ArgumentParser], None],
                run: Callable) -> None:
    """Register ``probgen train NAME``.

    :param add_arguments: adds the model's own flags (constructor kwargs as kebab-case).
    :param run: ``run(args, ds, path) -> model``: build, fit, and save the model to ``path``.
    """
    if not _TRAIN_SUBPARSERS:
        raise RuntimeError("the spine's train command must be registered first")
    p = _TRAIN_SUBPARSERS[0].add_parser(name, help=help, description=help)
    add_data_args(p)
    add_run_args(p, out=None)  # --out comes from the parent `train` parser
    add_arguments(p)
    p.set_defaults(trainer=name)
    TRAINERS[name] = run


def fit_story(model, args, ds, path: Path, *, labels: bool = False, **options):
    """Fit an SVI story from the common flags, checkpointing to ``path`` (best) and resuming.

    With ``--distributed`` (inside ``torchrun``) every rank trains its shard on ``cuda:LOCAL_RANK``
    or the CPU, and rank 0 alone writes ``path``."""
    dist = None
    if getattr(args, "distributed", False):
        from ..distributed import Distributed

        dist = options["distributed"] = Distributed.from_env(args.device)
    model = model.to(dist.device if dist is not None else resolve_device(args.device))
    y = ds.train_labels if labels else None
    val_y = ds.val_labels if labels else None
    model.fit(ds.train, y=y, val=ds.val, val_y=val_y, epochs=args.epochs, batch_size=args.batch_size,
              lr=args.lr, patience=args.patience, checkpoint=path, resume=args.resume,
              progress=not args.quiet, clip_norm=args.clip_norm, **options)
    if (dist is None or dist.is_main) and (args.epochs == 0 or not path.exists()):
        model.save(path)
    if dist is not None:
        dist.barrier()  # no rank reports before rank 0's files are complete
    return model


def load_for_sampling(args):
    """Checks ``-n`` and ``--out FILE.png``, seeds, and loads ``args.checkpoint`` on ``args.device``."""
    if args.n < 1:
        raise CLIError(f"-n must be >= 1, got {args.n}")
    if not str(args.out).lower().endswith(".png"):
        raise CLIError(f"--out {args.out}: must be a .png file")
    seed_everything(args.seed)
    return load_model(args.checkpoint, device=str(resolve_device(args.device)))


def load_model(path: str | Path, device: str = "cpu"):
    """Load any checkpoint (no code runs from the file)."""
    from ..models import load

    return load(path, device=device)


def save_images(images, path: str | Path, *, npy: str | Path | None = None, nrow: int | None = None,
                title: str | None = None) -> Path:
    """Write a grid PNG of ``images [n, H, W]`` and optionally the raw array as ``.npy``."""
    from ..io import atomic_write
    from ..plots import image_grid

    path = Path(path)
    image_grid(images, path, nrow=nrow, title=title)
    if npy is not None:
        import numpy as np

        arr = images.detach().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)
        atomic_write(npy, lambda f: np.save(f, arr))
    return path
