"""Typed configurations shared by every recipe, and the few helpers every recipe needs.

Every default is written once, here (or in a recipe's own config dataclass); the CLI takes its
argparse defaults from these dataclasses. Recipes raise ``ValueError`` / ``FileNotFoundError``
with one clear line for anything the user can fix.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["DataConfig", "RunConfig", "FitConfig", "load_data", "seed_everything", "resolve_device",
           "out_dir"]


@dataclass
class DataConfig:
    """Which data, and how it is prepared (see :func:`probgen.data.load`)."""

    data: str = "digits"  # digits, mnist, binarized-mnist, frey-face, or a path (.npz/.npy/PNG folder)
    data_dir: str | None = None  # default: $PROBGEN_DATA_DIR
    binarize: bool = True  # threshold grey levels at 0.5
    continuous: bool = False  # dequantize grey levels for Gaussian likelihoods
    download: bool = False  # allow torchvision to download MNIST
    seed: int = 0  # split permutation (and dequantization noise)


@dataclass
class RunConfig:
    """Where a run writes, on which device, how loudly."""

    out: str = "runs"
    seed: int = 0
    device: str = "cpu"
    quiet: bool = False


@dataclass
class FitConfig:
    """Options of the SVI trainer (:func:`probgen.infer.svi.fit_svi`)."""

    epochs: int = 50
    batch_size: int = 128
    lr: float = 1e-3
    patience: int = 10  # epochs without validation improvement before stopping
    resume: bool = False  # continue from OUT/<model>.last.pt if present
    clip_norm: float | None = None  # clip the global gradient norm
    distributed: bool = False  # multi-process SVI inside torchrun


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy, torch and Pyro."""
    import random

    import numpy as np
    import pyro

    random.seed(seed)
    np.random.seed(seed % 2**32)
    pyro.set_rng_seed(seed)


def resolve_device(name: str):
    """``"cpu"`` / ``"cuda"`` / ``"cuda:1"`` → ``torch.device``; a clear error when CUDA is missing."""
    import torch

    if str(name).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name}: CUDA is not available on this machine")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ValueError(f"device {name!r}: not a device (use cpu or cuda)") from None


def load_data(cfg: DataConfig, *, need_labels: bool = False):
    """Load the data set a :class:`DataConfig` names; checks labels when the model needs them."""
    from ..data import load

    if cfg.continuous:
        ds = load(cfg.data, cfg.data_dir, binarize=False, seed=cfg.seed, dequantize=True, download=cfg.download)
    else:
        ds = load(cfg.data, cfg.data_dir, binarize=cfg.binarize, seed=cfg.seed, download=cfg.download)
    if need_labels and ds.train_labels is None:
        raise ValueError(f"{ds.name}: this model needs labels, and the data has none")
    return ds


def out_dir(path: str | Path) -> Path:
    """Create the output folder (refusing a path that is an existing file)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {path}: exists and is not a folder")
    path.mkdir(parents=True, exist_ok=True)
    return path
