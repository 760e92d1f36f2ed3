"""The ``train`` and ``sample`` recipes: fit one registered family, draw from a checkpoint."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from .config import (DataConfig, RunConfig, device_opt, load_data, opt, out_dir, resolve_device, runs_in,
                     seed_everything, write_npy)
from .guard import MAX_IMAGES, check_kind, check_sizes, count
from .models import is_lead, model_spec

__all__ = ["TrainConfig", "TrainResult", "train", "train_model", "SampleConfig", "SampleResult", "sample"]


@dataclass
class TrainConfig:
    """Which family (a name in :data:`probgen.recipes.models.MODELS`), its options, the data, the run."""

    model: str = ""  # required: a name in MODELS
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
        fit = self.model.train_result
        step = "" if fit is None or fit.step == "eager" else \
            f"; SVI steps {fit.step}, captured once in {fit.capture_seconds:.2f} s"
        return (f"trained {name} on {self.dataset.describe()} in {self.seconds:.1f} s wall on "
                f"{self.model.device.type} ({self.model.n_params()} parameters{step}) -> {self.path}")


def _load(spec, params, data_cfg: DataConfig):
    """The family's data: its own loader (a text corpus), else the images ``data_cfg`` names."""
    return spec.load(params, data_cfg) if spec.load else load_data(data_cfg)


def _data_config(spec, data: DataConfig | None) -> DataConfig:
    if data is not None:
        return data
    return DataConfig(**(spec.data_defaults or {}))


def train_model(name: str, params, data_cfg: DataConfig | None, run: RunConfig, ds=None, *,
                path: Path | None = None) -> TrainResult:
    """Build and fit family ``name`` (data loaded unless ``ds`` is given); its trainer writes ``path``
    (default: the run file of ``name`` in ``run.out``, :func:`probgen.io.run_files`)."""
    from ..io import run_files

    spec = model_spec(name)
    params = params if params is not None else spec.config()
    if ds is None:
        ds = _load(spec, params, _data_config(spec, data_cfg))
    path = Path(path) if path is not None else run_files(out_dir(run.out), name).checkpoint
    notes: list[str] = []
    t0 = time.perf_counter()
    model = spec.build(params, ds)
    if model.traits.labels and ds.train_labels is None:
        raise ValueError(f"{ds.name}: a {name} needs labels, and the data has none")
    model = spec.trainer(model, params, ds, path, run, notes)
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
    ds = _load(spec, params, data_cfg)
    out = out_dir(cfg.run.out)
    from ..runs import run_folder  # lock + manifest: one writer, a finished run is never replaced silently

    import contextlib

    from ..io import run_files

    files = run_files(out, cfg.model)
    # under torchrun rank 0 alone holds the folder (it alone writes); the other ranks only train. A checkpoint
    # no run of this name wrote (copied, or from an earlier version) is replaced only with --force / --resume;
    # --resume without the resume file is refused (it would train afresh and replace the finished file)
    hold = (run_folder(out, name=cfg.model, command=f"train {cfg.model}", force=cfg.run.force, resume=params.resume,
                       outputs=[files.checkpoint], resume_from=files.last)
            if is_lead(params) else contextlib.nullcontext(out))
    with hold:
        return train_model(cfg.model, params, data_cfg, cfg.run, ds, path=files.checkpoint)


# -- sample ---------------------------------------------------------------------------------------
@dataclass
class SampleConfig:
    """``probgen sample``: draw from a checkpoint into a PNG grid."""

    checkpoint: str = opt("", "a .pt file written by probgen")
    n: int = opt(64, "number of samples", flag="-n")
    out: str = opt("runs/sample", "a .png file, or a folder that receives samples.png (a text model: a .txt file "
                                  "or a folder that receives samples.txt; by default its sentences are printed)")
    npy: str | None = opt(None, "also save the raw samples, [n, H, W] in [0, 1]")
    label: int | None = opt(None, "class to generate (conditional models)")
    mean: bool = opt(False, "decoder/component means (the default where a model has them; the flag insists)")
    draws: bool = opt(False, "noisy draws x ~ p(x | z) instead of the decoder/component means")
    temperature: float | None = opt(None, "sampling temperature, where supported")
    story: str | None = opt(None, "a checkpoint of your own program: name its code, FILE.py:NAME (runs that "
                                  "file; never done without this flag)", metavar="FILE.py:NAME")
    seed: int = opt(0, "random seed")
    device: str = device_opt()
    force: bool = opt(False, "replace the files this command writes if they exist")


@dataclass
class SampleResult:
    samples: object  # Tensor [n, H, W] in [0, 1], or a list of strings (text models)
    path: Path | None  # the PNG written, or the text file (None: the sentences were printed)
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
    from ..plots import image_grid

    path = Path(path)
    image_grid(images, path, nrow=nrow, title=title)
    write_npy(npy, images)
    return path


def sample(cfg: SampleConfig) -> SampleResult:
    """``model.sample(n, **options)`` for the options given (label, mean, temperature)."""
    import torch

    from .guard import claim

    model = load_for_sampling(cfg.checkpoint, n=cfg.n, seed=cfg.seed, device=cfg.device, story=cfg.story)
    check_kind("sample", model, cfg.checkpoint)
    offers = model.traits.offers
    png = None if "text" in offers else claim(cfg)[0]
    txt = _text_file(cfg, model) if "text" in offers else None  # text: printed, or written to --out FILE.txt
    if cfg.mean and cfg.draws:
        raise ValueError("--mean and --draws exclude each other")
    # means by default where the model has them: pictures, not noise
    kwargs = {"mean": True} if "sample_mean" in offers and not cfg.draws else {}
    for key, ability, lacks in (("label", "sample_label", "is not class-conditional"),
                                ("mean", "sample_mean", "has no mean images"),
                                ("temperature", "sample_temperature", "has no sampling temperature")):
        value = getattr(cfg, key)
        if value is None or value is False:
            continue
        if ability not in offers:
            raise ValueError(f"--{key}: a {model.kind} checkpoint {lacks} (it does not take --{key})")
        kwargs[key] = value
    with torch.no_grad():
        x = model.sample(cfg.n, **kwargs)
    if isinstance(x, (list, tuple)) and x and isinstance(x[0], str):  # text models
        if txt is not None:
            from ..io import atomic_write

            atomic_write(txt, lambda f: f.write("".join(line + "\n" for line in x)), mode="w")
        return SampleResult(list(x), txt, model)
    return SampleResult(x.cpu(), save_images(x.cpu(), png, npy=cfg.npy), model)


def _text_file(cfg: SampleConfig, model) -> Path | None:
    """Where the sentences of a text model go: ``--out FILE.txt`` (or a folder given as ``--out``, which
    receives ``samples.txt``), else ``None``: printed. A picture's ``--out`` (``x.png``) or ``--npy`` is refused:
    a text model writes text, and saying nothing while writing no picture would leave the user looking for it.

    :raises ValueError: ``--out`` with a suffix other than ``.txt``, ``--npy``, or a file that exists (no force).
    """
    from ..runs import claim_outputs, output_file

    what = f"a {model.kind} checkpoint writes text, not images"
    if cfg.npy:
        raise ValueError(f"--npy {cfg.npy}: {what}; leave out --npy")
    suffix = Path(cfg.out).suffix
    if suffix and suffix.lower() != ".txt":
        raise ValueError(f"--out {cfg.out}: {what}; give --out FILE.txt, or leave out --out to print the sentences")
    if cfg.out == SampleConfig.out:  # the default folder: printed, as always
        return None
    path = output_file(cfg.out, "samples.txt")
    claim_outputs([path], force=cfg.force)
    return path
