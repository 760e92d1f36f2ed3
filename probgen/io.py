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
it in memory. :func:`run_files` is the one place that names the files of a run (``OUT/<name>.pt``,
``OUT/<name>.last.pt``); :meth:`probgen.Story.save` is the one caller of :func:`save_checkpoint` and
:meth:`probgen.Story.load` the one loader of a model (this module imports neither: no circles).
"""
from __future__ import annotations

import contextlib
import copy
import errno
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
    "check_output",
    "check_outputs",
    "write_json",
    "save_checkpoint",
    "load_checkpoint",
    "read_once",
    "check_model_size",
    "check_finite",
    "check_device",
    "MAX_CONFIG_INT",
]

CHECKPOINT_FORMAT = 2
READABLE_FORMATS = (1, 2)
#: format-1 ``extra`` keys that held a trainer's resume state (moved to ``trainer`` on upgrade)
_FORMAT1_TRAINER_KEYS = ("epoch", "bad_epochs", "history", "best_epoch", "best_val", "best_state_dict",
                         "rng", "shuffle_rng", "steps", "best_coverage")


@dataclass(frozen=True)
class RunFiles:
    """The files of one trained model in a run folder (:func:`run_files` names them)."""

    out: Path  # the run folder
    name: str  # the model's name in it (``vae``, ``sentence-vae``, a user story's stem: ``pyro_vae.VAE``)
    checkpoint: Path  # OUT/<name>.pt: the best model
    last: Path  # OUT/<name>.last.pt: model + optimizer + trainer state after the last epoch (resume)

    @property
    def files(self) -> tuple[Path, Path]:
        """Both files, for a command that claims its outputs (``runs.claim_outputs``)."""
        return self.checkpoint, self.last

    def exists(self) -> bool:
        """The model's checkpoint is there (a finished or resumable fit wrote it)."""
        return self.checkpoint.is_file()


def last_path(best: str | os.PathLike) -> Path:
    """The resume file beside a checkpoint: ``OUT/vae.pt`` -> ``OUT/vae.last.pt``."""
    best = Path(best)
    return best.with_name(best.stem + ".last.pt")


def run_files(out: str | os.PathLike, name: str) -> RunFiles:
    """The checkpoint and resume file of model ``name`` in the run folder ``out``: the one place that
    names them (recipes, the tour, ``compare --from-dir`` and the experiments ask here).

    :param out: the run folder (``--out``).
    :param name: the model's name: a plain file name without a suffix (``vae``, ``sentence-vae``).
    :raises ValueError: ``name`` is empty, a path (``a/b``, ``..``), hidden (``.x``) or ends in ``.pt``.
    """
    if not isinstance(name, str) or not name or name != Path(name).name or name.startswith(".") \
            or name.endswith(".pt") or os.sep in name or "/" in name:
        raise ValueError(f"model name {name!r}: must be a plain name such as 'vae' (no folder, no '.pt')")
    best = Path(out) / f"{name}.pt"
    return RunFiles(out=Path(out), name=name, checkpoint=best, last=last_path(best))


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "wb") -> Path:
    """Write a file so that readers see either the old or the new content, never half.

    :param path: destination file.
    :param write: called with an open file object (temporary file in the same folder).
    :param mode: ``"wb"`` or ``"w"``.
    :return: the destination path.
    """
    path = check_output(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise _named(e, path.parent) from None
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX: the old file stays until this instant
        _fsync_dir(path.parent)  # make the rename itself survive a power cut, not only a kill
    except BaseException as e:
        failure = _write_failure(e, path)  # before the unlink: a full disk is still full now
        try:
            os.unlink(tmp)  # never leave a partial file behind (disk full, read-only, killed)
        except OSError:
            pass
        if failure is not None:
            raise failure from None
        raise
    return path


#: what torch's zip writer says when a write came up short (``torch.save`` to a file object: the OSError
#: Python raised is the context of this RuntimeError; a write torch did in C++ names no errno at all)
_TORCH_SHORT_WRITE = ("unexpected pos", "inline_container", "PytorchStreamWriter failed", "file write failed")


def _write_failure(e: BaseException, path: Path) -> OSError | None:
    """A failed write as one ``OSError`` naming ``path`` with the errno that says why (ENOSPC, EDQUOT,
    EROFS, ...), so that every caller (the command line: one line, exit 2) sees a full disk as a full
    disk, however torch wrapped it; ``None`` when ``e`` is no write failure (a bug, Ctrl-C)."""
    if isinstance(e, OSError):
        return _named(e, path) if e.errno is not None else e
    if not (isinstance(e, RuntimeError) and any(s in str(e) for s in _TORCH_SHORT_WRITE)):
        return None
    cause, seen = e.__cause__ or e.__context__, 0
    while cause is not None and seen < 8:  # torch raised while handling the OSError of the write
        if isinstance(cause, OSError) and cause.errno is not None:
            return _named(cause, path)
        cause, seen = cause.__cause__ or cause.__context__, seen + 1
    code = _disk_state(path.parent)
    return OSError(code, f"{os.strerror(code)} (torch: {str(e).strip().splitlines()[0]})", str(path))


def _disk_state(folder: Path) -> int:
    """Why a write into ``folder`` came up short when nobody said: EROFS (mounted read-only), ENOSPC
    (under 1 MiB left for us: the partial file is still there, so a full disk reads as full), else EIO."""
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):  # no statvfs (Windows) or the folder is gone
        return errno.EIO
    if st.f_flag & getattr(os, "ST_RDONLY", 1):
        return errno.EROFS
    return errno.ENOSPC if st.f_bavail * st.f_frsize < 2**20 else errno.EIO


def _named(e: OSError, path: Path) -> OSError:
    """The same error, naming ``path`` when the system did not (a failed ``write`` names no file)."""
    if e.filename is None and e.errno is not None:
        err = type(e)(e.errno, e.strerror or os.strerror(e.errno), str(path))
        return err
    return e


def check_output(path: str | os.PathLike, *, inputs=()) -> Path:
    """Refuse an output path that is not ours to replace.

    :param path: a file the command is about to write.
    :param inputs: files the command reads; the output must not be one of them.
    :raises ValueError: ``path`` is a symbolic link, exists and is not a regular file (folder, FIFO,
        device, socket), or is one of ``inputs``.
    """
    path = Path(path)
    if path.is_symlink():
        raise ValueError(f"{path}: is a symbolic link; refusing to write through it (remove it or choose "
                         "another output path)")
    if path.exists() and not path.is_file():
        what = "a folder" if path.is_dir() else "not a regular file (FIFO, device or socket)"
        raise ValueError(f"{path}: exists and is {what}; refusing to replace it (choose another output path)")
    for src in inputs:
        if src is not None and _same_file(path, Path(src)):
            raise ValueError(f"{path}: is also an input of this command ({src}); writing it would destroy "
                             "the input (choose another output path)")
    return path


def check_outputs(outputs, inputs) -> None:
    """:func:`check_output` for every output path (``None`` entries skipped) against every input."""
    for out in outputs:
        if out is not None and str(out):
            check_output(out, inputs=inputs)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b) and not a.is_dir()
    except OSError:
        return False


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
    if type(obj).__module__ == "numpy" and hasattr(obj, "item") and getattr(obj, "ndim", None) == 0:
        return _plain(obj.item())  # numpy scalars (np.int64(64)) become the plain value they hold
    raise ValueError(f"checkpoint config value of type {type(obj).__name__} is not a plain value")


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a probgen checkpoint without running any code from it.

    :param path: a file written by :func:`save_checkpoint`.
    :param map_location: device for the tensors.
    :raises FileNotFoundError: the file does not exist.
    :raises ValueError: the file is not a probgen checkpoint, is truncated, or would
        need arbitrary code to unpickle (refused by ``weights_only=True``).
    """
    from .data.safe import regular_file

    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a folder, not a checkpoint file")
    regular_file(path, "checkpoint")  # a FIFO would block, a device never end
    if not _READ_ONCE:
        return _read_checkpoint(path, map_location)
    st = path.stat()  # the file's identity: a file replaced since (atomic_write renames) is read again
    key, who = (str(path.resolve()), str(map_location)), (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
    cache = _READ_ONCE[-1]
    if cache.get(key, (None,))[0] != who:
        cache[key] = (who, _read_checkpoint(path, map_location))
    return _fresh(cache[key][1])


#: the caches of the open :func:`read_once` blocks, innermost last: ``{(path, device): (identity, payload)}``
_READ_ONCE: list[dict] = []


@contextlib.contextmanager
def read_once():
    """Inside this block :func:`load_checkpoint` reads each file from disk once (per device); every call
    still gets its own dicts and tensors, as from a fresh read, and a file rewritten in between is read
    again. The CLI runs each command inside one (its checks, the data spec and the model read one file)."""
    _READ_ONCE.append({})
    try:
        yield
    finally:
        _READ_ONCE.pop()


def _fresh(obj: Any) -> Any:
    """A copy of a payload: new dicts and lists, cloned tensors (cheap beside unpickling the file)."""
    if isinstance(obj, dict):
        new = copy.copy(obj)  # keeps the type (OrderedDict) and a state dict's ``_metadata``
        new.update((k, _fresh(v)) for k, v in obj.items())
        return new
    if type(obj) in (list, tuple):
        return type(obj)(_fresh(v) for v in obj)
    return obj.clone() if isinstance(obj, torch.Tensor) else obj


def _read_checkpoint(path: Path, map_location) -> dict:
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
    _check_plain_sizes(payload["config"], path)
    try:
        check_model_size(payload["config"], payload["state_dict"])
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return _upgrade(payload) if fmt == 1 else payload


#: the largest integer a checkpoint config may hold (a width, a dimension, a count): 2**24 already
#: means a 16M-wide layer; anything larger is a damaged or hostile file, refused before building
MAX_CONFIG_INT = 2**24
_MAX_CONFIG_DEPTH = 16


def _check_plain_sizes(config: Any, path, name: str = "config", depth: int = 0) -> None:
    if depth > _MAX_CONFIG_DEPTH:
        raise ValueError(f"{path}: damaged probgen checkpoint: config nested deeper than {_MAX_CONFIG_DEPTH}")
    items = (((f"{k}" if depth == 0 else f"{name}.{k}"), v) for k, v in config.items()) \
        if isinstance(config, dict) else ((f"{name}[{i}]", v) for i, v in enumerate(config))
    for key, value in items:
        if isinstance(value, (dict, list)):
            _check_plain_sizes(value, path, key, depth + 1)
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_CONFIG_INT \
                and "seed" not in key:
            raise ValueError(f"{path}: checkpoint config {key}={value} exceeds the bound {MAX_CONFIG_INT}; "
                             "refusing to build the model (damaged or hostile file)")


def check_device(device) -> torch.device:
    """``device`` as a :class:`torch.device` that exists on this machine; ``"auto"``: CUDA when
    ``torch.cuda.is_available()``, else the CPU.

    :raises ValueError: not a device name, or CUDA asked for where there is none.
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"device {device!r}: not a device (use cpu or cuda)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r}: CUDA is not available on this machine")
    return device


def check_finite(module) -> None:
    """Refuse a model whose parameters hold NaN or infinity (buffers may use NaN for "not set yet").

    :raises ValueError: naming the first such parameter.
    """
    for name, p in module.named_parameters():
        if p.is_floating_point() and not torch.isfinite(p).all():
            raise ValueError(f"checkpoint holds NaN or infinite weights ({name}); refusing to load it "
                             "(retrain, or use an earlier checkpoint)")


def check_model_size(config: dict, state_dict: dict, *, slack: int = 4) -> None:
    """Refuse a config that would build a model far larger than the weights stored beside it, without
    building anything: a network's parameters are at most (sum of its sizes) x (largest size), so that
    product over the config's integers must stay within ``slack`` x the stored tensors (plus 2**24).
    A vocabulary size only ever meets the other sizes (embedding rows, output columns), never itself,
    so it counts as ``vocab x (sum of the others)``.

    :raises ValueError: the model the config describes is too large for the file.
    """
    vocab = [v for k, v in _ints(config) if v > 0 and "vocab" in k]
    sizes = [v for k, v in _ints(config) if v > 0 and "vocab" not in k]
    stored = sum(v.numel() for v in state_dict.values() if isinstance(v, torch.Tensor))
    wanted = sum(sizes) * max(sizes, default=0) + sum(vocab) * (sum(sizes) + 1)
    if wanted > slack * stored + 2**24:
        raise ValueError(f"checkpoint config describes a model of up to {wanted} parameters but the file "
                         f"stores {stored}; refusing to build it (damaged or hostile file)")


def _ints(obj: Any, key: str = ""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _ints(v, str(k))
    elif isinstance(obj, list):
        for v in obj:
            yield from _ints(v, key)
    elif isinstance(obj, int) and not isinstance(obj, bool) and "seed" not in key:
        yield key, obj


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
