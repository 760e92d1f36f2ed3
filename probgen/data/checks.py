"""Checks of data a user hands over (images, tensors, labels): one-line ``ValueError`` naming the problem.

Shared by the loaders (:mod:`.images`), the stories' ``prepare`` and the estimator.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["MAX_CLASSES", "check_images", "check_data", "check_labels", "check_tensor"]


def check_images(x: np.ndarray, source: str) -> np.ndarray:
    """Validate user images and scale them to float32 in [0, 1].

    :param x: array ``[n, H, W]``, ``[n, H, W, 1]``, ``[n, 1, H, W]`` or ``[n, D]``;
        uint8 0..255 or float 0..1.
    :param source: name used in error messages.
    :raises ValueError: empty, wrong rank, colour images, NaN/inf, or values out of range.
    """
    x = np.asarray(x)
    if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise ValueError(f"{source}: expected a numeric array, got dtype {x.dtype}")
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    elif x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim == 4:
        raise ValueError(f"{source}: colour images {x.shape} are not supported; use grey levels [n, H, W]")
    if x.ndim not in (2, 3):
        raise ValueError(f"{source}: expected images [n, H, W] or vectors [n, D], got shape {x.shape}")
    if x.shape[0] == 0 or x.size == 0:
        raise ValueError(f"{source}: no data (shape {x.shape})")
    if x.dtype == bool:
        return x.astype(np.float32)
    if np.issubdtype(x.dtype, np.integer):
        if x.min() < 0 or x.max() > 255:
            raise ValueError(f"{source}: integer pixel values must lie in 0..255, "
                             f"got {x.min()}..{x.max()}")
        return x.astype(np.float32) / 255.0
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise ValueError(f"{source}: data contains NaN or inf")
    if x.min() < 0 or x.max() > 1:
        raise ValueError(f"{source}: float pixel values must lie in [0, 1], got {x.min():.3g}..{x.max():.3g}")
    return x


#: the most classes a labelled data set or a conditional model may have: each class is one input column of
#: the networks (one-hot) or one row of an embedding, so 2**16 classes × 256 hidden units is 64 MiB a layer,
#: while a stray label of 10**9 would ask for a terabyte; ImageNet-21k, the largest common set, has 21841
MAX_CLASSES = 2**16


def check_labels(y, n: int | None = None, *, n_classes: int | None = None, name: str = "y") -> torch.Tensor:
    """Class labels as a long tensor ``[n]``: whole numbers in ``0..n_classes - 1`` (at most
    :data:`MAX_CLASSES` classes when ``n_classes`` is not known yet).

    :param n: the number of examples they label (``None``: any).
    :raises ValueError: naming the problem and the label range.
    """
    try:
        y = check_tensor(torch.as_tensor(y), name)
    except (TypeError, ValueError, RuntimeError, OverflowError):
        raise ValueError(f"{name}: labels must be whole numbers, got {type(y).__name__}") from None
    if y.dtype == torch.bool or y.is_complex() or (y.is_floating_point() and not bool((y == y.round()).all())):
        raise ValueError(f"{name}: labels must be whole class numbers, got dtype {y.dtype}")
    hi = MAX_CLASSES if n_classes is None else n_classes
    if y.is_floating_point() and len(y.reshape(-1)) and float(y.abs().max()) > 2**62:
        raise ValueError(f"{name}: labels must lie in 0..{hi - 1}, got {float(y.abs().max()):g}")
    y = y.long().reshape(-1)
    if n is not None and len(y) != n:
        raise ValueError(f"{name}: got {len(y)} labels for {n} examples")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= hi):
        why = "" if n_classes is not None else f" (at most {MAX_CLASSES} classes)"
        raise ValueError(f"{name}: labels must lie in 0..{hi - 1}{why}, got {int(y.min())}..{int(y.max())}")
    return y


def check_tensor(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    """``x`` with values to read: a sparse tensor made dense, a meta tensor (shapes only, no values) refused.

    :raises ValueError: a meta tensor, or a layout that cannot be made dense.
    """
    if x.is_meta:
        raise ValueError(f"{name}: a meta tensor holds no values (device 'meta'); give data on the cpu or cuda")
    if x.layout != torch.strided:
        try:
            x = x.to_dense()
        except (RuntimeError, NotImplementedError, TypeError):
            raise ValueError(f"{name}: tensors of layout {x.layout} are not supported; give a dense tensor") from None
    return x


def check_data(x, *, x_dim: int | None = None, binary: bool = False, name: str = "x") -> torch.Tensor:
    """Validate a data tensor for a model: numeric, finite, non-empty, right size, range.

    :param x: data ``[n, ...]`` (tensor or array).
    :param x_dim: number of values per example the model expects (``None``: any).
    :param binary: values must lie in [0, 1] (Bernoulli likelihood).
    :raises ValueError: naming the problem.
    """
    if not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(x)
        except Exception:  # noqa: BLE001
            raise ValueError(f"{name}: expected a tensor or array, got {type(x).__name__}") from None
    x = check_tensor(x, name)
    if x.dtype == torch.bool or not (x.is_floating_point() or x.dtype in (torch.uint8, torch.int32, torch.int64)):
        if x.dtype != torch.bool:
            raise ValueError(f"{name}: expected numbers, got dtype {x.dtype}")
    x = x.float()  # float64/float16 too: the networks are float32
    if x.dim() == 0:
        raise ValueError(f"{name}: expected a batch [n, ...], got a scalar")
    if x.shape[0] == 0:
        raise ValueError(f"{name}: empty data (shape {tuple(x.shape)})")
    if x_dim is not None and x[0].numel() != x_dim:
        raise ValueError(f"{name}: each example must have {x_dim} values, got shape {tuple(x.shape[1:])} "
                         f"({x[0].numel()} values)")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name}: data contains NaN or inf")
    if binary and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"{name}: a Bernoulli likelihood needs values in [0, 1], "
                         f"got {float(x.min()):.3g}..{float(x.max()):.3g}")
    return x
