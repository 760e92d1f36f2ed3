"""Files that must never be lost or trusted blindly: atomic writes, safe checkpoints, run files.

A checkpoint is one ``torch.save`` dict holding only tensors and plain Python
values, so it loads with ``torch.load(..., weights_only=True)`` and unpickling
it can never run code. Format 2, written by :func:`save_checkpoint` only::

    {"probgen": {"format": 2, "version": "0.1.0"},
     "kind": "vae",                 # registry name of the model class
     "config": {...},               # constructor keyword arguments
     "state_dict": {...},           # tensors
     "optimizer": {...} | None,     # optimizer state (resume files)
     "trainer": {...} | None,       # trainer state: epoch, history, best, RNG, ... (resume files)
     "data": {...} | None,          # the data it was trained on (probgen.data.Dataset.spec)
     "extra": {...}}                # anything else a family records

:func:`load_checkpoint` also reads format 1 (the main before issue 15: no ``optimizer``,
``trainer`` or ``data``; resume files kept the training state in ``extra``) and upgrades
it in memory. :func:`run_files` is the one place that names the files of a run.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

__all__ = [
    "CHECKPOINT_FORMAT",
    "READABLE_FORMATS",
    "RunFiles",
    "run_files",
    "last_path",
    "atomic_write",
    "write_json",
    "save_checkpoint",
    "load_checkpoint",
]

CHECKPOINT_FORMAT = 2
READABLE_FORMATS = (1, 2)
#: format-1 ``extra`` keys that held a trainer's resume state (moved to ``trainer`` on upgrade)
_FORMAT1_TRAINER_KEYS = ("epoch", "bad_epochs", "history", "best_epoch", "best_val", "best_state_dict",
                         "rng", "shuffle_rng", "steps", "best_coverage")


@dataclass(frozen=True)
class RunFiles:
    """The files of one trained model in a run folder."""

    checkpoint: Path  # OUT/<name>.pt: the best model
    last: Path  # OUT/<name>.last.pt: model + optimizer + trainer state after the last epoch (resume)


def last_path(best: str | os.PathLike) -> Path:
    """The resume file beside a checkpoint: ``OUT/vae.pt`` -> ``OUT/vae.last.pt``."""
    best = Path(best)
    return best.with_name(best.stem + ".last.pt")


def run_files(out: str | os.PathLike, name: str) -> RunFiles:
    """The checkpoint and resume file of model ``name`` in the run folder ``out``."""
    best = Path(out) / f"{name}.pt"
    return RunFiles(checkpoint=best, last=last_path(best))


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "wb") -> Path:
    """Write a file so that readers see either the old or the new content, never half.

    :param path: destination file.
    :param write: called with an open file object (temporary file in the same folder).
    :param mode: ``"wb"`` or ``"w"``.
    :return: the destination path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX: the old file stays until this instant
        _fsync_dir(path.parent)  # make the rename itself survive a power cut, not only a kill
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    return atomic_write(path, lambda f: json.dump(obj, f, indent=2, default=_json_default), mode="w")


def _json_default(o: Any) -> Any:
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def save_checkpoint(
    path: str | os.PathLike,
    *,
    kind: str,
    config: dict,
    state_dict: dict,
    optimizer: dict | None = None,
    trainer: dict | None = None,
    data: dict | None = None,
    extra: dict | None = None,
) -> Path:
    """Save a model checkpoint atomically (temporary file + rename): the one writer.

    :param path: destination ``.pt`` file.
    :param kind: registry name of the model class (``"vae"``, ``"gmm"``, ...).
    :param config: constructor keyword arguments; must be plain values.
    :param state_dict: the module's ``state_dict()``.
    :param optimizer: optimizer state (tensors and plain values) for resuming.
    :param trainer: trainer state (epoch, history, best score, RNG states, ...) for resuming.
    :param data: the data spec the model was trained on (:attr:`probgen.data.Dataset.spec`).
    :param extra: anything else the family records (plain values and tensors).
    """
    from ._version import __version__

    payload = {
        "probgen": {"format": CHECKPOINT_FORMAT, "version": __version__},
        "kind": kind,
        "config": _plain(config),
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
        "optimizer": optimizer,
        "trainer": trainer,
        "data": None if data is None else _plain(data),
        "extra": extra or {},
    }
    return atomic_write(path, lambda f: torch.save(payload, f))


def _plain(obj: Any) -> Any:
    """Turn tuples into lists etc. so that the config survives ``weights_only`` loading."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    raise ValueError(f"checkpoint config value of type {type(obj).__name__} is not a plain value")


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a probgen checkpoint without running any code from it.

    :param path: a file written by :func:`save_checkpoint`.
    :param map_location: device for the tensors.
    :raises FileNotFoundError: the file does not exist.
    :raises ValueError: the file is not a probgen checkpoint, is truncated, or would
        need arbitrary code to unpickle (refused by ``weights_only=True``).
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a folder, not a checkpoint file")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            raise ValueError(
                f"{path}: refused to load: the file needs code to unpickle "
                "(not a probgen checkpoint, or an untrusted pickle)"
            ) from None
        if isinstance(e, PermissionError):
            raise
        raise ValueError(f"{path}: not a readable probgen checkpoint, truncated or corrupt ({msg})") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("probgen"), dict) or "kind" not in payload:
        raise ValueError(f"{path}: not a probgen checkpoint (no 'probgen'/'kind' header)")
    fmt = payload["probgen"].get("format")
    if fmt not in READABLE_FORMATS:
        raise ValueError(
            f"{path}: checkpoint format {fmt} is not supported by this probgen "
            f"(reads formats {', '.join(map(str, READABLE_FORMATS))})"
        )
    # a hand-edited or foreign file may carry the header but not the body
    for key, typ in (("kind", str), ("config", dict), ("state_dict", dict), ("extra", dict)):
        if not isinstance(payload.get(key, {} if key == "extra" else None), typ):
            raise ValueError(f"{path}: damaged probgen checkpoint: {key!r} is missing or not a {typ.__name__}")
    for key in ("optimizer", "trainer", "data"):
        if not isinstance(payload.get(key), (dict, type(None))):
            raise ValueError(f"{path}: damaged probgen checkpoint: {key!r} is not a dict")
    return _upgrade(payload) if fmt == 1 else payload


def _upgrade(payload: dict) -> dict:
    """Format 1 -> 2 in memory. Resume files of the old SVI loop kept the optimizer in
    ``extra["optim"]``, those of the old GAN loop in ``extra["opt_d"]`` / ``extra["opt_g"]``;
    both kept the trainer state (epoch, history, best, RNG, ...) beside it in ``extra``."""
    extra = dict(payload.get("extra") or {})
    optimizer = trainer = None
    if "optim" in extra:
        optimizer = extra.pop("optim")
    elif "opt_d" in extra or "opt_g" in extra:
        optimizer = {"d": extra.pop("opt_d", None), "g": extra.pop("opt_g", None)}
    if optimizer is not None:  # a resume file: its training state is the trainer's
        trainer = {k: extra.pop(k) for k in _FORMAT1_TRAINER_KEYS if k in extra}
    return {
        "probgen": {**payload["probgen"], "format": CHECKPOINT_FORMAT, "upgraded_from": 1},
        "kind": payload["kind"],
        "config": payload["config"],
        "state_dict": payload["state_dict"],
        "optimizer": optimizer,
        "trainer": trainer,
        "data": None,  # format 1 did not record the data
        "extra": extra,
    }
