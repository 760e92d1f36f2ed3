"""Data sets as plain tensors, with deterministic splits and no surprise downloads.

Named sets: ``digits`` (built into scikit-learn, the offline default), ``mnist``,
``binarized-mnist`` and ``frey-face`` (read from ``data_dir``, by default the
environment variable ``PROBGEN_DATA_DIR``). Anything else is treated as a path
to the user's own images: an ``.npz`` (array ``x``, optional labels ``y``), an
``.npy``, or a folder of PNG files (labels from sub-folder names, if any).
"""
from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .checks import MAX_CLASSES, check_images
from .safe import memory_budget, missing, npz_names, path_like, read_bytes, read_npy, read_npz, read_png_grey, regular_file

__all__ = [
    "DATASETS",
    "Dataset",
    "load",
    "batches",
    "data_dir_from_env",
    "from_spec",
]

DATASETS = ("digits", "mnist", "binarized-mnist", "frey-face")
ENV_VAR = "PROBGEN_DATA_DIR"


@dataclass
class Dataset:
    """Train/validation/test tensors of one data set.

    Images are float tensors ``[n, H, W]`` with values in [0, 1] (vectors: ``[n, D]``).
    Labels are ``long`` tensors ``[n]`` or ``None``.
    """

    name: str
    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor
    train_labels: torch.Tensor | None = None
    val_labels: torch.Tensor | None = None
    test_labels: torch.Tensor | None = None
    binarized: bool = False
    dequantized: bool = False
    levels: int | None = None  # grey levels of the raw data (17 for digits, 256 for MNIST)
    info: dict = field(default_factory=dict)
    #: what :func:`load` was called with (plain values; checkpoints record it), see :attr:`spec`
    load_args: dict = field(default_factory=dict)

    @property
    def spec(self) -> dict:
        """How to load this data set again: ``{"name", "data_dir", "binarize", "dequantize", "seed",
        "splits": [n_train, n_val, n_test]}`` (plain values; :func:`from_spec` reads it back)."""
        args = self.load_args
        return {"name": args.get("name", self.name), "data_dir": args.get("data_dir"),
                "binarize": args.get("binarize", self.binarized or None),
                "dequantize": bool(args.get("dequantize", self.dequantized)), "seed": int(args.get("seed", 0)),
                # a view of fewer validation or test images (the tour's) keeps the whole set's sizes
                "splits": list(args.get("splits") or (len(self.train), len(self.val), len(self.test)))}

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one example, e.g. ``(8, 8)``."""
        return tuple(self.train.shape[1:])

    @property
    def x_dim(self) -> int:
        """Number of values in one example (pixels)."""
        return int(np.prod(self.shape))

    @property
    def n_classes(self) -> int | None:
        if self.train_labels is None:
            return None
        return int(max(int(t.max()) for t in (self.train_labels, self.val_labels, self.test_labels)
                       if t is not None and len(t)) + 1)

    def to(self, device: str | torch.device) -> "Dataset":
        for split in ("train", "val", "test", "train_labels", "val_labels", "test_labels"):
            t = getattr(self, split)
            if t is not None:
                setattr(self, split, t.to(device))
        return self

    def describe(self) -> str:
        kind = "binary" if self.binarized else ("dequantized" if self.dequantized else "grey levels in [0,1]")
        return (f"{self.name}: {len(self.train)}/{len(self.val)}/{len(self.test)} train/val/test, "
                f"shape {self.shape}, {kind}")


def data_dir_from_env(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The data folder: ``data_dir`` if given, else ``$PROBGEN_DATA_DIR``, else ``None``."""
    if data_dir is not None:
        return Path(data_dir)
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else None


def load(
    name: str = "digits",
    data_dir: str | os.PathLike | None = None,
    binarize: bool | None = None,
    seed: int = 0,
    *,
    dequantize: bool = False,
    download: bool = False,
) -> Dataset:
    """Load a data set with deterministic splits.

    :param name: ``digits``, ``mnist``, ``binarized-mnist``, ``frey-face``, or a path to
        the user's own ``.npz`` / ``.npy`` / folder of PNGs.
    :param data_dir: folder holding the benchmark data (default ``$PROBGEN_DATA_DIR``).
    :param binarize: threshold grey levels at 0.5. ``None`` keeps the data as stored.
    :param seed: seed of the split permutation (and of the dequantization noise).
    :param dequantize: add uniform noise to the grey levels, ``(level + u) / levels``,
        so that Gaussian densities are meaningful; not combined with ``binarize``.
    :param download: allow torchvision to download MNIST into ``data_dir`` if missing.
    :raises ValueError: unknown name, bad values, or incompatible options.
    :raises FileNotFoundError: a data file is missing (the message names the expected path).
    """
    if binarize and dequantize:
        raise ValueError("choose either binarize or dequantize, not both")
    if not isinstance(name, (str, os.PathLike)):
        raise ValueError(f"data set name must be a string or path, got {type(name).__name__}")
    key = str(name).strip().lower().replace("_", "-")
    if key == "digits":
        ds = _load_digits(seed)
    elif key in ("mnist", "binarized-mnist", "frey-face"):
        root = data_dir_from_env(data_dir)
        if root is None:
            raise FileNotFoundError(
                f"data set {key!r} needs a data folder: pass --data-dir DIR or set {ENV_VAR} "
                f"(expected layout: {_LAYOUT[key]})"
            )
        ds = {"mnist": _load_mnist, "binarized-mnist": _load_binarized_mnist,
              "frey-face": _load_frey}[key](root, seed, download)
    else:
        path = Path(name)
        problem = missing(path)
        if problem is not None:
            # a bare word is a misspelt set name; anything path-like (a folder, a suffix, a dangling link)
            # is a file that is not there, and a symlink loop is a loop: say which
            if isinstance(problem, FileNotFoundError) and not path_like(path):
                raise ValueError(
                    f"unknown data set {name!r}: use one of {', '.join(DATASETS)}, "
                    "or a path to an .npz/.npy file or a folder of PNGs"
                )
            raise problem
        ds = _load_user(path, seed)
    if binarize and not ds.binarized:
        for split in ("train", "val", "test"):
            setattr(ds, split, (getattr(ds, split) > 0.5).float())
        ds.binarized = True
    if dequantize:
        if ds.binarized:
            raise ValueError(f"{ds.name} is binary: dequantization needs grey levels")
        _dequantize(ds, seed)
    # a user's file is recorded by its absolute path, so a checkpoint finds it from any folder
    ds.load_args = {"name": key if key in DATASETS else str(Path(name).resolve()),
                    "data_dir": None if data_dir is None else str(data_dir),
                    "binarize": None if binarize is None else bool(binarize),
                    "dequantize": bool(dequantize), "seed": int(seed)}
    return ds


def from_spec(spec: dict, data_dir: str | os.PathLike | None = None) -> Dataset:
    """Load the data set a :attr:`Dataset.spec` describes (e.g. the one a checkpoint was trained on).

    :param spec: ``{"name", "data_dir", "binarize", "dequantize", "seed", "splits"}``; missing keys
        take :func:`load`'s defaults.
    :param data_dir: overrides the recorded data folder (the data may have moved).
    :raises ValueError: ``spec`` is not a dict with a name, or the split sizes differ from the recorded ones.
    """
    if not isinstance(spec, dict) or not spec.get("name"):
        raise ValueError(f"a data spec must be a dict with a 'name', got {spec!r}")
    ds = load(spec["name"], data_dir if data_dir is not None else spec.get("data_dir"),
              spec.get("binarize"), int(spec.get("seed", 0)), dequantize=bool(spec.get("dequantize", False)))
    want = spec.get("splits")
    got = [len(ds.train), len(ds.val), len(ds.test)]
    if want is not None and list(want) != got:
        raise ValueError(f"data {spec['name']!r}: split sizes {got} differ from the recorded {list(want)} "
                         "(the data files changed)")
    return ds


_LAYOUT = {
    "mnist": "DIR/mnist/mnist.npz with x_train, y_train, x_test, y_test "
             "(or torchvision's DIR/MNIST/raw/*-idx?-ubyte[.gz])",
    "binarized-mnist": "DIR/binarized_mnist/binarized_mnist.npz with bit-packed train, valid, test",
    "frey-face": "DIR/frey_face/frey_face.npz with array x of shape (1965, 28, 20)",
}


def _split(x: np.ndarray, y: np.ndarray | None, sizes: tuple[int, int, int], seed: int):
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(x))
    a, b = sizes[0], sizes[0] + sizes[1]
    idx = perm[:a], perm[a:b], perm[b:b + sizes[2]]
    xs = [torch.as_tensor(x[i], dtype=torch.float32) for i in idx]
    ys = [None] * 3 if y is None else [torch.as_tensor(y[i], dtype=torch.long) for i in idx]
    return xs, ys


def _load_digits(seed: int) -> Dataset:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = d.images.astype(np.float32) / 16.0  # 8x8 values 0..16 -> [0, 1]
    (tr, va, te), (ytr, yva, yte) = _split(x, d.target, (1297, 250, 250), seed)
    return Dataset("digits", tr, va, te, ytr, yva, yte, levels=17,
                   info={"source": "sklearn.datasets.load_digits"})


def _require(path: Path, key: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{key}: file not found: {path} (expected layout: {_LAYOUT[key]})")
    return path


def _np_load(path: Path, keys=None) -> dict:
    """The arrays of an ``.npz`` (only ``keys``), headers and sizes checked first (:mod:`.safe`)."""
    return read_npz(path, keys)


def _read_idx(path: Path) -> np.ndarray:
    raw = read_bytes(path)
    if path.suffix == ".gz":
        try:
            with gzip.open(path, "rb") as f:
                raw = f.read(memory_budget() + 1)  # never more than the budget, however it expands
        except (OSError, EOFError) as e:
            raise ValueError(f"{path}: cannot read as gzip ({e})") from None
    if len(raw) < 4 or raw[3] > 4:
        raise ValueError(f"{path}: not an IDX file (MNIST raw format)")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    if len(raw) != 4 + 4 * ndim + int(np.prod(dims)):
        raise ValueError(f"{path}: IDX header says {dims} but the file holds {len(raw) - 4 - 4 * ndim} bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _find_raw_mnist(root: Path) -> dict | None:
    raw = root / "MNIST" / "raw"
    names = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
             "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}
    out = {}
    for key, stem in names.items():
        for cand in (raw / stem, raw / f"{stem}.gz"):
            if cand.is_file():
                out[key] = _read_idx(cand)
                break
        else:
            return None
    return out


def _load_mnist(root: Path, seed: int, download: bool) -> Dataset:
    npz = root / "mnist" / "mnist.npz"
    if npz.is_file():
        arrays = _np_load(npz, ("x_train", "y_train", "x_test", "y_test"))
    else:
        arrays = _find_raw_mnist(root)
        if arrays is None and download:
            import torchvision

            try:
                torchvision.datasets.MNIST(str(root), train=True, download=True)
                torchvision.datasets.MNIST(str(root), train=False, download=True)
            except Exception as e:  # noqa: BLE001 - no network, a proxy, a full disk: one line
                raise ValueError(f"--download: could not download MNIST into {root} ({type(e).__name__}); "
                                 f"put the files there yourself (expected layout: {_LAYOUT['mnist']})") from None
            arrays = _find_raw_mnist(root)
        if arrays is None:
            _require(npz, "mnist")
    for k in ("x_train", "y_train", "x_test", "y_test"):
        if k not in arrays:
            raise ValueError(f"{npz}: missing array {k!r} (expected layout: {_LAYOUT['mnist']})")
    x = arrays["x_train"].astype(np.float32) / 255.0
    xt = arrays["x_test"].astype(np.float32) / 255.0
    y, yt = arrays["y_train"].astype(np.int64), arrays["y_test"].astype(np.int64)
    t = torch.as_tensor
    return Dataset("mnist", t(x[:50000]), t(x[50000:]), t(xt),
                   t(y[:50000]), t(y[50000:]), t(yt), levels=256,
                   info={"source": str(npz), "split": "first 50k train / last 10k of train as val / 10k test"})


def _load_binarized_mnist(root: Path, seed: int, download: bool) -> Dataset:
    path = _require(root / "binarized_mnist" / "binarized_mnist.npz", "binarized-mnist")
    arrays = _np_load(path, ("train", "valid", "test"))
    splits = []
    for key in ("train", "valid", "test"):
        if key not in arrays:
            raise ValueError(f"{path}: missing array {key!r}")
        bits = np.unpackbits(arrays[key], axis=1)[:, :784]
        splits.append(torch.as_tensor(bits.reshape(-1, 28, 28), dtype=torch.float32))
    labels = [None, None, None]
    lab_path = root / "binarized_mnist" / "binarized_mnist_derived_labels.npz"
    if lab_path.is_file():
        lab = _np_load(lab_path, ("y_train", "y_valid", "y_test"))
        labels = [torch.as_tensor(lab[k].astype(np.int64)) for k in ("y_train", "y_valid", "y_test")]
    # the test split is sorted by class: any subset of it must be drawn at random
    return Dataset("binarized-mnist", *splits, *labels, binarized=True,
                   info={"source": str(path), "note": "Larochelle & Murray fixed binarization; "
                         "test split sorted by class"})


def _load_frey(root: Path, seed: int, download: bool) -> Dataset:
    path = _require(root / "frey_face" / "frey_face.npz", "frey-face")
    x = _np_load(path, ("x",)).get("x")
    if x is None:
        raise ValueError(f"{path}: missing array 'x'")
    x = x.astype(np.float32) / 255.0
    n = len(x)
    n_val = n_test = n // 10
    (tr, va, te), _ = _split(x, None, (n - n_val - n_test, n_val, n_test), seed)
    return Dataset("frey-face", tr, va, te, levels=256, info={"source": str(path)})


def _load_user(path: Path, seed: int) -> Dataset:
    y = None
    if path.is_dir():
        x, y = _load_png_folder(path)
    elif path.suffix == ".npz":
        arrays = _np_load(path, ("x", "y"))
        if "x" not in arrays:
            found = ", ".join(npz_names(path)) or "none"
            raise ValueError(f"{path}: an .npz must hold an array named 'x' (found: {found})")
        x, y = arrays["x"], arrays.get("y")
    elif path.suffix == ".npy":
        x = read_npy(path)
    else:
        regular_file(path)
        raise ValueError(f"{path}: unsupported data file; use .npz (array x, optional y), .npy or a folder of PNGs")
    x = check_images(x, str(path))
    if y is not None:
        y = np.asarray(y)
        if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer) or (len(y) and y.min() < 0):
            raise ValueError(f"{path}: labels y must be non-negative integers of shape ({len(x)},), "
                             f"got {y.dtype} {y.shape}")
        if len(y) and int(y.max()) >= MAX_CLASSES:  # the class count is max(y) + 1: a model input per class
            raise ValueError(f"{path}: labels y must lie in 0..{MAX_CLASSES - 1} (at most {MAX_CLASSES} classes), "
                             f"got {int(y.min())}..{int(y.max())}")
    n = len(x)
    if n < 3:
        raise ValueError(f"{path}: need at least 3 examples for a train/val/test split, got {n}")
    n_val = n_test = max(1, n // 10)
    (tr, va, te), (ytr, yva, yte) = _split(x, y, (n - n_val - n_test, n_val, n_test), seed)
    binary = bool(np.isin(x, (0.0, 1.0)).all())
    return Dataset(path.stem or path.name, tr, va, te, ytr, yva, yte, binarized=binary,
                   levels=None if binary else 256, info={"source": str(path), "split": "80/10/10"})


def _load_png_folder(path: Path):
    files = sorted(p for p in path.rglob("*.png"))
    if not files:
        raise ValueError(f"{path}: folder holds no .png files")
    classes = sorted({p.parent.relative_to(path).as_posix() for p in files})
    labelled = classes != ["."]
    images, budget = [], memory_budget()
    for p in files:
        images.append(read_png_grey(p))
        budget -= images[-1].size * 4  # as float32
        if budget < 0:
            raise ValueError(f"{path}: the images need more than {memory_budget() / 2**30:.2f} GiB as float32 "
                             "(a quarter of this machine's memory)")
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise ValueError(f"{path}: images have different sizes {sorted(shapes)}; all must be H×W alike")
    y = np.array([classes.index(p.parent.relative_to(path).as_posix()) for p in files]) if labelled else None
    return np.stack(images), y


def _dequantize(ds: Dataset, seed: int) -> None:
    levels = ds.levels or 256
    g = torch.Generator().manual_seed(seed + 1)
    for split in ("train", "val", "test"):
        x = getattr(ds, split)
        ints = torch.round(x * (levels - 1))
        # (integer level + u) / levels with u ~ U(0, 1): a density on [0, 1]^D whose
        # log-likelihood lower-bounds the discrete one (Theis et al. 2016)
        setattr(ds, split, (ints + torch.rand(x.shape, generator=g)) / levels)
    ds.dequantized = True


def batches(
    x: torch.Tensor,
    batch_size: int,
    *,
    y: torch.Tensor | None = None,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """Yield ``(x_batch, y_batch)`` minibatches; the last one may be smaller.

    :param x: data ``[n, ...]``.
    :param batch_size: examples per batch.
    :param y: optional labels ``[n]``.
    :param shuffle: permute the order first (with ``generator`` for reproducibility).
    """
    n = len(x)
    order = torch.randperm(n, generator=generator, device="cpu").to(x.device) if shuffle else None
    for start in range(0, n, batch_size):
        if order is None:
            sl = slice(start, start + batch_size)
            yield x[sl], (None if y is None else y[sl])
        else:
            idx = order[start:start + batch_size]
            yield x[idx], (None if y is None else y[idx])

