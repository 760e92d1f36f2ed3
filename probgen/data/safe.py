"""Reading a user's files without trusting them: regular files only, headers before bodies.

A FIFO, a device or a socket given as data would block or never end, so it is refused before it
is opened. An ``.npy`` array, each ``.npz`` member and each PNG is checked from its header (dtype,
shape, bytes it will take once converted to float32) before a byte of its body is read, so a small
compressed file cannot expand into gigabytes. Pickled (object) arrays are never loaded.
"""
from __future__ import annotations

import errno
import os
import stat
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["npz_names", "regular_file", "missing", "path_like", "memory_budget", "read_npy", "read_npz", "read_png_grey",
           "read_bytes"]

#: the largest share of this machine's memory one loaded input may take (as float32)
MEMORY_SHARE = 0.25
#: used when the machine's memory cannot be read
_FALLBACK_BUDGET = 4 * 2**30


def memory_budget() -> int:
    """Bytes one loaded input may take: :data:`MEMORY_SHARE` of the physical memory."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return _FALLBACK_BUDGET
    return int(total * MEMORY_SHARE) if total > 0 else _FALLBACK_BUDGET


def regular_file(path: str | os.PathLike, what: str = "data file") -> Path:
    """``path`` if it is a regular file (symbolic links to one are followed); a one-line error otherwise.

    :raises FileNotFoundError: nothing is there. :raises ValueError: a folder, FIFO, device or socket.
    """
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except OSError:
        raise missing(path, what) from None
    if not stat.S_ISREG(mode):
        kind = ("a folder" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
        raise ValueError(f"{path}: is {kind}, not a regular {what}; refusing to read it")
    return path


def missing(path: str | os.PathLike, what: str = "data file") -> Exception | None:
    """Why ``path`` cannot be opened, as the error to raise (``None``: it can): a symbolic-link loop (a
    ``ValueError``), a link whose target is gone or no file at all (``FileNotFoundError``), else the
    system's reason (a ``ValueError``). ``Path.exists()`` says ``False`` to all of them alike."""
    path = Path(path)
    try:
        os.stat(path)
        return None
    except FileNotFoundError:
        pass
    except OSError as e:
        if e.errno == errno.ELOOP:
            return ValueError(f"{path}: is a symlink loop (its links point back at each other); give the real {what}")
        return ValueError(f"{path}: cannot read ({e.strerror})")
    if path.is_symlink():  # the link is there, its target is not
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        return FileNotFoundError(f"{what} not found: {path} is a symbolic link to {target}, which does not exist "
                                 "(deleted or moved)")
    return FileNotFoundError(f"{what} not found: {path} (no such file)")


def path_like(path: str | os.PathLike) -> bool:
    """``path`` reads as a file's path (a folder in it, a suffix, ``~``/``.``, a link), not as the bare name of
    a data set or corpus: a missing one is "no such file", not "unknown data set"."""
    path = Path(path)
    return len(path.parts) > 1 or bool(path.suffix) or str(path).startswith(("~", ".")) or path.is_symlink()


def read_bytes(path: str | os.PathLike, what: str = "data file") -> bytes:
    """The content of a regular file, refused above :func:`memory_budget`."""
    path = regular_file(path, what)
    size, budget = path.stat().st_size, memory_budget()
    if size > budget:
        raise ValueError(f"{path}: {_gb(size)} is over the {_gb(budget)} bound for one input "
                         f"({int(MEMORY_SHARE * 100)}% of this machine's memory)")
    return path.read_bytes()


def _gb(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def _check_header(shape: tuple, dtype: np.dtype, source: str, budget: int) -> int:
    """Refuse dtypes probgen cannot use and arrays over the budget; returns the body's bytes."""
    if dtype.hasobject:
        raise ValueError(f"{source}: cannot read: an object array needs pickle, which is refused")
    kind = {"c": "complex", "m": "timedelta", "M": "datetime", "V": "structured (void)"}.get(dtype.kind)
    if kind:
        raise ValueError(f"{source}: {kind} arrays ({dtype}) are not images; expected a numeric array "
                         "of real numbers")
    if dtype.kind in "USa":
        raise ValueError(f"{source}: expected a numeric array, got dtype {dtype}")
    if any(not isinstance(d, int) or d < 0 for d in shape):
        raise ValueError(f"{source}: cannot read: the header's shape {shape} is not a shape")
    count = int(np.prod(shape, dtype=object)) if shape else 1
    need = count * max(dtype.itemsize, 4)  # what it takes once converted to float32
    if need > budget:
        raise ValueError(f"{source}: array {tuple(shape)} {dtype} needs {_gb(need)} as float32, over the "
                         f"{_gb(budget)} bound ({int(MEMORY_SHARE * 100)}% of this machine's memory)")
    return count * dtype.itemsize


def _read_header(f, source: str) -> tuple[tuple, np.dtype, bool]:
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unknown .npy version {version}")
    except Exception as e:  # noqa: BLE001 - any header failure is a bad file
        raise ValueError(f"{source}: cannot read as .npy ({type(e).__name__}: {e})") from None
    return tuple(shape), np.dtype(dtype), fortran


def _read_body(f, shape: tuple, dtype: np.dtype, fortran: bool, nbytes: int, source: str) -> np.ndarray:
    raw = f.read(nbytes)
    if len(raw) != nbytes:
        raise ValueError(f"{source}: cannot read as .npy: truncated ({len(raw)} of {nbytes} bytes)")
    arr = np.frombuffer(raw, dtype=dtype)
    return arr.reshape(shape[::-1]).transpose() if fortran else arr.reshape(shape)


def read_npy(path: str | os.PathLike) -> np.ndarray:
    """An ``.npy`` array, its header checked before its body is read (never unpickles)."""
    path = regular_file(path)
    with open(path, "rb") as f:
        shape, dtype, fortran = _read_header(f, str(path))
        nbytes = _check_header(shape, dtype, str(path), memory_budget())
        return _read_body(f, shape, dtype, fortran, nbytes, str(path))


def read_npz(path: str | os.PathLike, keys=None) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` (only ``keys`` if given): every member's declared size and header are
    checked before any member is decompressed, against one budget for all of them together.

    :raises ValueError: not a zip of ``.npy`` members, a member over the budget, a bad dtype.
    """
    path = regular_file(path)
    budget = memory_budget()
    try:
        z = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read as .npz ({type(e).__name__}: {e})") from None
    with z:
        members = {i.filename[:-4]: i for i in z.infolist() if i.filename.endswith(".npy")}
        wanted = [k for k in members if keys is None or k in keys]
        total = sum(members[k].file_size for k in wanted)
        if total > budget:
            raise ValueError(f"{path}: members {', '.join(wanted)} expand to {_gb(total)}, over the "
                             f"{_gb(budget)} bound ({int(MEMORY_SHARE * 100)}% of this machine's memory)")
        out = {}
        for k in wanted:
            source = f"{path}[{k}]"
            try:
                with z.open(members[k]) as f:
                    shape, dtype, fortran = _read_header(f, source)
                    nbytes = _check_header(shape, dtype, source, budget)
                    out[k] = _read_body(f, shape, dtype, fortran, nbytes, source)
            except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as e:
                raise ValueError(f"{source}: cannot read as .npz ({type(e).__name__}: {e})") from None
    return out


def npz_names(path: str | os.PathLike) -> list[str]:
    """The array names of an ``.npz``, read from its directory (nothing is decompressed)."""
    try:
        with zipfile.ZipFile(regular_file(path)) as z:
            return [n[:-4] for n in z.namelist() if n.endswith(".npy")]
    except (zipfile.BadZipFile, OSError) as e:
        raise ValueError(f"{path}: cannot read as .npz ({type(e).__name__}: {e})") from None


#: PIL modes: 8-bit grey is read as is; these are refused with the reason
_PNG_REFUSED = {"I;16": "16-bit", "I;16B": "16-bit", "I;16L": "16-bit", "I": "32-bit integer",
                "F": "32-bit float", "CMYK": "CMYK colour", "YCbCr": "YCbCr colour", "LAB": "Lab colour",
                "HSV": "HSV colour"}


def read_png_grey(path: str | os.PathLike, *, max_pixels: int | None = None) -> np.ndarray:
    """One PNG as 8-bit grey levels ``[H, W]`` (uint8).

    1-bit and 8-bit grey are read as they are; RGB(A), palette and grey+alpha images are accepted
    only when they are grey in fact (equal channels, opaque); 16-bit and true-colour images are refused
    with the reason (probgen models 8-bit grey levels).

    :raises ValueError: not a PNG, too large, colour, 16-bit, or transparent.
    """
    from PIL import Image

    path = regular_file(path, "PNG file")
    max_pixels = max_pixels or memory_budget() // 4
    try:
        with Image.open(path) as im:
            mode, (w, h) = im.mode, im.size
            if w * h > max_pixels:
                raise ValueError(f"{path}: {w}x{h} pixels is over the {max_pixels} bound for one image")
            if mode in _PNG_REFUSED:
                raise ValueError(f"{path}: {_PNG_REFUSED[mode]} PNG (mode {mode}); probgen reads 8-bit grey "
                                 "levels: convert it (e.g. PIL: im.convert('L'))")
            if mode in ("1", "L"):
                return np.asarray(im.convert("L"))
            rgba = np.asarray(im.convert("RGBA"))
    except ValueError:
        raise
    except Exception as e:  # noqa: BLE001 - any decoding failure is a bad file
        raise ValueError(f"{path}: cannot read image ({type(e).__name__})") from None
    if (rgba[..., 3] != 255).any():
        raise ValueError(f"{path}: transparent PNG (mode {mode}); probgen reads opaque grey images")
    if not ((rgba[..., 0] == rgba[..., 1]).all() and (rgba[..., 1] == rgba[..., 2]).all()):
        raise ValueError(f"{path}: colour PNG (mode {mode}); probgen reads grey levels: convert it "
                         "(e.g. PIL: im.convert('L'))")
    return rgba[..., 0].copy()
