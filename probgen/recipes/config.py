"""Typed configurations shared by every recipe, and the few helpers every recipe needs.

Every default is written once, here (or in a recipe's own config dataclass); the CLI takes its
argparse defaults from these dataclasses. Recipes raise ``ValueError`` / ``FileNotFoundError``
with one clear line for anything the user can fix.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DataConfig", "RunConfig", "FitBase", "FitConfig", "load_data", "seed_everything", "resolve_device",
           "device_opt", "describe_device", "device_announced", "with_device", "out_dir", "write_npy", "opt",
           "parse_int_list", "replace_given", "runs_in"]

#: the default of every ``--device``: CUDA when torch sees a GPU, else the CPU (:func:`resolve_device`)
DEVICE = "auto"


def opt(default, help: str = "", *, choices=None, flag: str | None = None, negate: str | None = None,
        short: str | None = None, nargs=None, metavar=None, default_factory=None, bounds: tuple | None = None):
    """A dataclass field with what the CLI needs to make its flag (help, choices, flag name).

    :param flag: the flag when it is not ``--`` + the field name in kebab case.
    :param negate: for a bool defaulting to True, the flag that sets it False (``--no-binarize``).
    :param short: a one-dash alias such as ``-n``.
    :param bounds: ``(lowest, highest, why)`` of a whole number, checked by
        :func:`probgen.recipes.guard.check_sizes` (from Python and the command line alike; argparse keeps every
        int flag within 64 bits).
    """
    meta = {"help": help, "choices": choices, "flag": flag, "negate": negate, "short": short,
            "nargs": nargs, "metavar": metavar, "bounds": bounds}
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


#: the most torch threads a run may ask for (torch keeps the number in a C int: 2**31 overflows)
MAX_THREADS = 1024


def threads_opt():
    """The ``--threads`` field of every trainer's config (SVI, EM, the GAN's game), written once."""
    return opt(None, "torch threads for training (default: half the cores, at most 4; 1 on a 2-core machine)",
               metavar="N", bounds=(1, MAX_THREADS, "torch threads"))


def device_opt():
    """The ``--device`` field of every config that runs a model (:data:`DEVICE`), written once."""
    return opt(DEVICE, "auto (CUDA when available, else the CPU), cpu, cuda or cuda:N")


def parse_int_list(text, name: str) -> tuple[int, ...]:
    """``"256,128"`` (or a list) → ``(256, 128)``; a one-line ``ValueError`` naming ``name`` otherwise."""
    if isinstance(text, (list, tuple)):
        return tuple(int(v) for v in text)
    try:
        return tuple(int(v) for v in str(text).split(",") if v.strip())
    except ValueError:
        raise ValueError(f"{name}: expected comma-separated integers, got {text!r}") from None


def replace_given(cfg, **given):
    """A copy of dataclass ``cfg`` with the fields in ``given`` that it has (others ignored)."""
    from dataclasses import fields, replace

    names = {f.name for f in fields(cfg)}
    return replace(cfg, **{k: v for k, v in given.items() if k in names})


@dataclass
class DataConfig:
    """Which data, and how it is prepared (see :func:`probgen.data.load`)."""

    data: str = opt("digits", "digits, mnist, binarized-mnist, frey-face, or a path to .npz/.npy/PNG folder")
    data_dir: str | None = opt(None, "folder with the benchmark data (default: $PROBGEN_DATA_DIR)")
    binarize: bool = opt(True, "threshold grey levels at 0.5", negate="--no-binarize")
    continuous: bool = opt(False, "dequantize grey levels ((level + U(0,1)) / levels) for Gaussian likelihoods")
    download: bool = opt(False, "allow downloading MNIST with torchvision")
    seed: int = opt(0, "random seed")  # split permutation (and dequantization noise)


@dataclass
class RunConfig:
    """Where a run writes, on which device, how loudly."""

    out: str = opt("runs", "output folder")
    seed: int = opt(0, "random seed")
    device: str = device_opt()
    quiet: bool = opt(False, "no progress bars")
    force: bool = opt(False, "replace a finished run (or files) in --out instead of refusing")


@dataclass
class FitBase:
    """The options every registered family's config declares, whatever its trainer: how long, on how much
    of the data, resumed or not, logged where, on how many threads or processes. The registry's one fit
    (:func:`probgen.recipes.models.fit_model`) reads these fields and :meth:`fit_options`, nothing else."""

    epochs: int = opt(50, "passes over the data")
    resume: bool = opt(False, "continue from OUT/<model>.last.pt (refused when there is none)")
    train_size: int | None = opt(None, "train on the first N training examples only (validation and test "
                                       "unchanged): a quick model on a laptop", metavar="N")
    minutes: float | None = opt(None, "stop at the end of the first epoch that finishes after M minutes (the "
                                      "best epoch is kept)", metavar="M")
    distributed: bool = opt(False, "multi-process SVI: launch with torchrun --nproc_per_node=N -m probgen train "
                            "...; --batch-size is the global batch, split across ranks (see docs/scale.md)")
    log_dir: str | None = opt(None, "write TensorBoard logs (losses per step and epoch, a sample grid per epoch for "
                                    "image models, hyperparameters) to this folder; "
                              "needs pip install 'probgen[tb]'", metavar="DIR")
    threads: int | None = threads_opt()

    def fit_options(self, run: RunConfig) -> dict:
        """The keyword options of ``model.fit`` (:func:`probgen.infer.train`) these fields give; a family's
        config overrides this to map its own fields (the GMM's ``method``/``max_iter``, the GAN's game).

        :param run: the run (its ``seed`` for trainers that take one).
        """
        return dict(epochs=self.epochs, resume=self.resume, log_dir=self.log_dir)

    def warm_start(self, model, ds, path: Path, run: RunConfig) -> None:
        """Called before the fit with the built model on its device (``path``: the checkpoint the fit will
        write): a family's warm start (the mixture VAE's k-means placement of its prior). Default: nothing."""

    def metrics(self, model, ds, notes: list) -> dict:
        """Numbers measured on the trained model, written into its checkpoint's ``extra`` by the trainer
        (and summary lines appended to ``notes``). Default: none."""
        return {}


@dataclass
class FitConfig(FitBase):
    """Options of the SVI trainer (:func:`probgen.infer.svi.fit_svi`)."""

    batch_size: int = opt(128, "examples per step")
    lr: float = opt(1e-3, "Adam learning rate")
    patience: int = opt(10, "early stopping: epochs without validation improvement")
    clip_norm: float | None = opt(None, "clip the global gradient norm (all parameters together) to this value")
    compile: bool = opt(False, "capture the SVI step once and run it under torch.compile (static stories; a "
                        "dynamic one trains eagerly after a one-line notice; see docs/scale.md)")

    def fit_options(self, run: RunConfig) -> dict:
        """The SVI trainer's options (``compile`` only when asked: trainers without it need not know it)."""
        return {**super().fit_options(run), "batch_size": self.batch_size, "lr": self.lr, "patience": self.patience,
                "clip_norm": self.clip_norm, **({"compile": True} if self.compile else {})}


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy, torch and Pyro."""
    import random

    import numpy as np
    import pyro

    random.seed(seed)
    np.random.seed(seed % 2**32)
    pyro.set_rng_seed(seed)


def resolve_device(name: str, *, threads: int | None = None):
    """``"auto"`` / ``"cpu"`` / ``"cuda"`` / ``"cuda:1"`` → ``torch.device`` (``auto``: CUDA when
    ``torch.cuda.is_available()``, else the CPU); a clear error when CUDA is missing. Inside
    :func:`device_announced` (a command of the CLI) the first device resolved is printed as the run's
    first line, ``device: cuda (NVIDIA H200)`` or ``device: cpu (1 thread)``.

    :param threads: the torch threads the run will use on the CPU, for that line (default: torch's now).
    :raises ValueError: not a device, or CUDA asked for where there is none (one line naming ``--device``).
    """
    from ..io import check_device

    try:
        device = check_device(name)
    except ValueError as e:
        raise ValueError(f"--device {name}: {str(e).split(': ', 1)[-1]}") from None
    if _ANNOUNCE and not _ANNOUNCE[-1]:
        from ..runtime import say_first

        _ANNOUNCE[-1] = True
        say_first(f"device: {describe_device(device, threads=threads)}")
    return device


#: one flag per :func:`device_announced` block: has its device line been said
_ANNOUNCE: list[bool] = []


@contextlib.contextmanager
def device_announced():
    """While inside (one command of the CLI), the first :func:`resolve_device` makes the device line the
    run's first line (on stderr): held (:func:`probgen.runtime.say_first`) until the run prints anything —
    a log line, a progress bar, a line on stdout — or ends, and dropped when the command fails before,
    so that a user's error stays one line."""
    import sys

    from ..runtime import drop_first, flush_first

    _ANNOUNCE.append(False)
    stdout = sys.stdout
    sys.stdout = _FirstLineFirst(stdout)
    try:
        yield
        flush_first()  # a run that printed nothing (or only files) still says where it ran
    except BaseException:
        drop_first()
        raise
    finally:
        if isinstance(sys.stdout, _FirstLineFirst):
            sys.stdout = stdout
        _ANNOUNCE.pop()


class _FirstLineFirst:
    """``sys.stdout`` during a command: the held device line goes out (on stderr) with its first output —
    above it on a terminal, just after it into a pipe or file (a reader that left, a broken pipe, then
    gets a quiet exit)."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        from ..runtime import drop_first, flush_first

        if text and _is_terminal(self._stream):
            flush_first()
        if self._stream is None:  # stdout closed at start (`>&-`): the run's files are its result
            return len(text)
        try:
            n = self._stream.write(text)
        except BrokenPipeError:
            drop_first()
            raise
        except (OSError, ValueError):  # a closed descriptor or file: keep going quietly, as on stderr
            return len(text)
        if text.endswith("\n"):  # after a whole line (print writes the text, then its newline)
            flush_first()
        return n

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def describe_device(device, *, threads: int | None = None) -> str:
    """``cuda:0 (NVIDIA H200)`` or ``cpu (2 threads)``: a device as the run's first line and every
    result file name it.

    :param device: a ``torch.device`` or its name (``"auto"`` resolved first).
    :param threads: the CPU threads to name (default: ``torch.get_num_threads()``).
    """
    import torch

    from ..io import check_device

    device = check_device(device)
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    n = threads or torch.get_num_threads()
    return f"{device} ({n} thread{'' if n == 1 else 's'})"


def with_device(summary: dict, device, *, threads: int | None = None) -> dict:
    """``summary`` with the device its numbers were measured on (``"device": "cuda:0 (NVIDIA H200)"``),
    what every result file a recipe writes records (a checkpoint's ``extra`` too).

    :param device: the run's device (a name, ``"auto"`` included, or a ``torch.device``).
    :param threads: the CPU threads to name (default: torch's now).
    """
    return {**summary, "device": describe_device(device, threads=threads)}


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


def write_npy(path, array) -> Path | None:
    """Raw values (a tensor or array) as an ``.npy`` file, atomically; nothing for ``path`` None."""
    if path is None:
        return None
    import numpy as np

    from ..io import atomic_write

    arr = np.asarray(array.detach().cpu() if hasattr(array, "detach") else array)
    return atomic_write(path, lambda f: np.lib.format.write_array(f, arr, allow_pickle=False))


def out_dir(path: str | Path) -> Path:
    """Create the output folder (refusing a path that is an existing file)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {path}: exists and is not a folder")
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_in(out: str):
    """A ``run: RunConfig`` dataclass field whose default writes under ``out`` (e.g. ``runs/compare``)."""
    return field(default_factory=lambda: RunConfig(out=out))
