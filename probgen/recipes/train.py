"""The ``train`` and ``sample`` recipes: fit one registered family, draw from a checkpoint."""
from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field
from pathlib import Path

from .config import DataConfig, RunConfig, load_data, opt, out_dir, resolve_device, runs_in, seed_everything
from .guard import MAX_IMAGES, check_kind, check_sizes, count
from .models import model_spec, remember_data

__all__ = ["TrainConfig", "TrainResult", "train", "train_model", "SampleConfig", "SampleResult", "sample"]


@dataclass
class TrainConfig:
    """Which family (a name in :data:`probgen.recipes.models.MODELS`), its options, the data, the run."""

    model: str = "vae"
    params: object | None = None  # the family's config dataclass (default: its defaults)
    data: DataConfig | None = None  # default: DataConfig() with the family's data defaults
    run: RunConfig = runs_in("runs/train")


@dataclass
class TrainResult:
    """A trained model, where it was saved, how long it took, on which data."""

    model: object
    path: Path
    seconds: float
    dataset: object
    notes: list = field(default_factory=list)  # summary lines a caller may print

    def line(self, name: str) -> str:
        n = self.model.n_params() if hasattr(self.model, "n_params") else "?"
        return (f"trained {name} on {self.dataset.describe()} in {self.seconds:.1f} s ({n} parameters) "
                f"-> {self.path}")


def _data_config(spec, data: DataConfig | None) -> DataConfig:
    if data is not None:
        return data
    return DataConfig(**(spec.data_defaults or {}))


def train_model(name: str, params, data_cfg: DataConfig | None, run: RunConfig, ds=None, *,
                path: Path | None = None) -> TrainResult:
    """Build and fit family ``name`` (data loaded unless ``ds`` is given) and save it to ``path``
    (default ``run.out/<name>.pt``)."""
    spec = model_spec(name)
    params = params if params is not None else spec.config()
    if ds is None:
        cfg = _data_config(spec, data_cfg)
        ds = spec.load(params, cfg) if spec.load else load_data(cfg, need_labels=spec.labels)
    path = Path(path) if path is not None else out_dir(run.out) / f"{name}.pt"
    notes: list[str] = []
    t0 = time.perf_counter()
    model = spec.build(params, ds)
    remember_data(model, ds)
    model = spec.fit(model, params, ds, path, run, notes)
    return TrainResult(model, path, time.perf_counter() - t0, ds, notes)


def train(cfg: TrainConfig) -> TrainResult:
    """Train one registered family on ``cfg.data`` and write ``cfg.run.out/<model>.pt``.

    :raises ValueError: unknown model, bad options or data (one line).
    """
    spec = model_spec(cfg.model)
    seed_everything(cfg.run.seed)
    data_cfg = _data_config(spec, cfg.data)
    params = cfg.params if cfg.params is not None else spec.config()
    check_sizes(params)  # bounds and option strings (elbo="magic") given through the API
    ds = spec.load(params, data_cfg) if spec.load else load_data(data_cfg, need_labels=spec.labels)
    out = out_dir(cfg.run.out)
    from ..runs import run_folder  # lock + manifest: one writer, a finished run is never replaced silently

    import contextlib
    import os

    # under torchrun rank 0 alone holds the folder (it alone writes); the other ranks only train
    lead = not getattr(params, "distributed", False) or os.environ.get("RANK", "0") == "0"
    hold = (run_folder(out, name=cfg.model, command=f"train {cfg.model}", force=getattr(cfg.run, "force", False),
                       resume=bool(getattr(params, "resume", False))) if lead else contextlib.nullcontext(out))
    with hold:
        return train_model(cfg.model, params, data_cfg, cfg.run, ds, path=out / f"{cfg.model}.pt")


# -- sample ---------------------------------------------------------------------------------------
@dataclass
class SampleConfig:
    """``probgen sample``: draw from a checkpoint into a PNG grid."""

    checkpoint: str = opt("", "a .pt file written by probgen")
    n: int = opt(64, "number of samples", flag="-n")
    out: str = opt("runs/sample", "a .png file, or a folder that receives samples.png")
    npy: str | None = opt(None, "also save the raw samples, [n, H, W] in [0, 1]")
    label: int | None = opt(None, "class to generate (conditional models)")
    mean: bool = opt(False, "decoder/component means (the default where a model has them; the flag insists)")
    draws: bool = opt(False, "noisy draws x ~ p(x | z) instead of the decoder/component means")
    temperature: float | None = opt(None, "sampling temperature, where supported")
    story: str | None = opt(None, "a checkpoint of your own program: name its code, FILE.py:NAME (runs that "
                                  "file; never done without this flag)", metavar="FILE.py:NAME")
    seed: int = opt(0, "random seed")
    device: str = opt("cpu", "cpu or cuda")
    force: bool = opt(False, "replace the files this command writes if they exist")


@dataclass
class SampleResult:
    samples: object  # Tensor [n, H, W] in [0, 1], or a list of strings (text models)
    path: Path | None  # the PNG written (None for text)
    model: object


#: the most samples one `probgen sample` draws into one grid PNG
MAX_SAMPLES = MAX_IMAGES


def load_for_sampling(checkpoint, *, n: int, seed: int, device: str, story: str | None = None):
    """Checks ``n``, seeds, and loads the checkpoint on ``device`` (a user's program only with ``story``,
    the code named explicitly)."""
    from .story import load_story_checkpoint

    count("-n", n, 1, MAX_SAMPLES, "images in one grid")
    seed_everything(seed)
    return load_story_checkpoint(checkpoint, allow_code=bool(story), story=story or None,
                                 device=str(resolve_device(device)))


def save_images(images, path, *, npy=None, nrow: int | None = None, title: str | None = None) -> Path:
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


def sample(cfg: SampleConfig) -> SampleResult:
    """``model.sample(n, **options)`` for the options given (label, mean, temperature)."""
    import torch

    from .guard import claim

    model = load_for_sampling(cfg.checkpoint, n=cfg.n, seed=cfg.seed, device=cfg.device, story=cfg.story)
    check_kind("sample", model.kind, cfg.checkpoint)
    text = model.kind == "sentence-vae"  # lines are printed, no file written
    png = None if text else claim(cfg)[0]  # --out: a .png or a folder; nothing replaced without --force
    params = inspect.signature(model.sample).parameters
    if cfg.mean and cfg.draws:
        raise ValueError("--mean and --draws exclude each other")
    kwargs = {"mean": True} if "mean" in params and not cfg.draws else {}  # means by default: pictures, not noise
    for key in ("label", "mean", "temperature"):
        value = getattr(cfg, key)
        if value is None or value is False:
            continue
        if key not in params:
            raise ValueError(f"--{key}: a {model.kind} checkpoint does not take it")
        kwargs[key] = value
    with torch.no_grad():
        x = model.sample(cfg.n, **kwargs)
    if isinstance(x, (list, tuple)) and x and isinstance(x[0], str):  # text models
        return SampleResult(list(x), None, model)
    return SampleResult(x.cpu(), save_images(x.cpu(), png, npy=cfg.npy), model)
