"""The ``complete`` recipe: keep the top rows of images, let a pixel model draw the rest."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .config import device_opt, opt, write_npy
from .models import checkpoint_data, checkpoint_extra
from .train import load_for_sampling, save_images

__all__ = ["CompleteConfig", "CompleteResult", "complete"]


@dataclass
class CompleteConfig:
    """``probgen complete CKPT``: which images, how many rows kept, how many completions."""

    checkpoint: str = opt("", "a pixelcnn/pixelrnn .pt file written by probgen")
    index: list = opt(None, "test image index(es)", nargs="+", default_factory=lambda: [0])
    rows: int | None = opt(None, "rows to keep (default: half the image)")
    n: int = opt(8, "completions per image", flag="-n")
    split: str = opt("test", "which split the images come from", choices=("test", "val", "train"))
    data: str | None = opt(None, "data set (default: the one the checkpoint was trained on)")
    data_dir: str | None = opt(None, "folder with the benchmark data")
    label: int | None = opt(None, "class to complete as (conditional models; default: the image's own label)")
    temperature: float = opt(1.0, "divide the logits by T")
    out: str = opt("runs/complete", "a .png file, or a folder that receives complete.png")
    npy: str | None = opt(None, "also save the completions, [images, n, H, W]")
    quiet: bool = opt(False, "no progress bar")
    seed: int = opt(0, "random seed")
    device: str = device_opt()
    force: bool = opt(False, "replace the files this command writes if they exist")


@dataclass
class CompleteResult:
    completions: object  # Tensor [images, n, H, W]
    rows: int
    path: Path
    npy: Path | None = None
    lines: list = field(default_factory=list)


def _data(cfg: CompleteConfig, model):
    """The checkpoint's data (its spec, or the name an old pixel checkpoint kept), unless ``cfg.data``."""
    from ..data import from_spec, load

    binarize = model.likelihood == "bernoulli"
    if cfg.data is None:
        spec = checkpoint_data(cfg.checkpoint)
        if spec:
            return from_spec(spec, data_dir=cfg.data_dir) if cfg.data_dir else from_spec(spec)
    name = cfg.data or checkpoint_extra(cfg.checkpoint).get("data") or "digits"
    return load(name, cfg.data_dir, binarize=binarize, seed=cfg.seed)


def complete(cfg: CompleteConfig) -> CompleteResult:
    """Keep the top ``rows`` rows of images ``index`` and draw the rest ``n`` times each."""
    import torch

    from .guard import check_kind, check_sizes, claim

    check_sizes(cfg)
    png = claim(cfg)[0]  # --out: a .png or a folder; nothing replaced without --force
    model = load_for_sampling(cfg.checkpoint, n=cfg.n, seed=cfg.seed, device=cfg.device)
    check_kind("complete", model, cfg.checkpoint)  # declares "complete" (pixelcnn, pixelrnn)
    ds = _data(cfg, model)
    images = getattr(ds, cfg.split)
    labels = getattr(ds, f"{cfg.split}_labels")
    bad = [i for i in cfg.index if not 0 <= i < len(images)]
    if bad:
        raise ValueError(f"--index {bad[0]}: the {cfg.split} split has {len(images)} images (0..{len(images) - 1})")
    h, w = model.shape
    rows = h // 2 if cfg.rows is None else cfg.rows
    if not 0 <= rows <= h:
        raise ValueError(f"--rows must lie in 0..{h}, got {rows}")
    y = None
    if model.traits.labels:
        if cfg.label is not None:
            y = torch.full((len(cfg.index) * cfg.n,), cfg.label, dtype=torch.long)
        elif labels is None:
            raise ValueError(f"{ds.name} has no labels: pass --label K for this conditional model")
        else:
            y = labels[cfg.index].repeat_interleave(cfg.n)
    elif cfg.label is not None:
        raise ValueError("--label: this pixel model is not class-conditional")
    x = images[cfg.index]  # [m, H, W]
    out = model.complete(x.repeat_interleave(cfg.n, 0), rows, y=y, temperature=cfg.temperature,
                         progress=not cfg.quiet).cpu()
    out = out.reshape(len(cfg.index), cfg.n, h, w)
    kept = x.clone()
    kept[:, rows:] = 0.5  # grey where the model has to draw
    grid = torch.cat([x[:, None], kept[:, None], out], dim=1).reshape(-1, h, w)
    path = save_images(grid, png, nrow=cfg.n + 2)
    npy = None
    if cfg.npy:
        npy = write_npy(cfg.npy, out)
    line = (f"completed {len(cfg.index)} {cfg.split} image(s) from row {rows} ({cfg.n} draws each) -> {png}"
            + (f" and {cfg.npy}" if cfg.npy else ""))
    return CompleteResult(out, rows, path, npy, [line])
