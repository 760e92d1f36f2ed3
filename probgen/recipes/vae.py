"""Recipes of the VAE family's pictures: ``traverse``, ``latent_map``, ``interpolate``,
``style_transfer`` and ``why_vae``.

Each is a plain function ``name(config) -> result``: it reads a checkpoint (``why_vae``, which
trains two small models, is in :mod:`probgen.recipes.code_space`), writes its figures, and returns the numbers, the paths and
the summary lines a caller may print. ``traverse``, ``latent_map`` and ``interpolate`` work for
any checkpoint with ``encode``/``decode`` (VAE, CVAE, AutoEncoder); for a CVAE they also take
``label``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .code_space import WhyVAEConfig, WhyVAEResult, decode_mean, encode_mean, why_vae  # noqa: F401 - re-exported
from .config import DataConfig, device_opt, opt, resolve_device, seed_everything, write_npy
from .guard import outputs_of
from .models import load_checkpoint_data

__all__ = ["PictureConfig", "TraverseConfig", "LatentMapConfig", "InterpolateConfig", "StyleTransferConfig",
           "WhyVAEConfig", "PictureResult", "WhyVAEResult", "traverse", "latent_map", "interpolate",
           "style_transfer", "why_vae", "load_coder", "encode_mean", "decode_mean"]


@dataclass
class PictureConfig:
    """What every picture recipe reads and writes."""

    checkpoint: str = opt("", "a .pt file written by probgen (vae, cvae, autoencoder)")
    out: str = opt("runs/picture", "a .png file, or a folder that receives the command's PNG")
    npy: str | None = opt(None, "also save the raw images as .npy", metavar="FILE")
    label: int | None = opt(None, "CVAE only: class to decode as (default: the label of the image used)")
    data: DataConfig | None = None  # None (or its data None): the data the checkpoint was trained on
    seed: int = opt(0, "random seed")
    device: str = device_opt()
    force: bool = opt(False, "replace the files this command writes if they exist")


@dataclass
class TraverseConfig(PictureConfig):
    """``probgen traverse``: every code dim fixed at a base code except two, swept on a grid."""

    out: str = opt("runs/traverse", "a .png file, or a folder that receives traverse.png")
    dims: list[int] | None = opt(None, "the two code dimensions to sweep (default: the two most active, by average "
                                  "KL per dimension on the test images)", nargs=2, metavar=("I", "J"))
    span: float = opt(3.0, "sweep each dim over [-range, range]", flag="--range")
    steps: int = opt(9, "grid points per dim")
    base: str = opt("sample", "the fixed code: sample (z ~ N(0, I)), zero, or image:INDEX (the posterior mean "
                              "of test image INDEX)")


@dataclass
class LatentMapConfig(PictureConfig):
    """``probgen latent-map``: a 2-D code's decoded grid and the test codes as a scatter."""

    out: str = opt("runs/latent-map", "a .png file, or a folder that receives latent_map.png")
    span: float = opt(3.0, "grid half-width", flag="--range")
    steps: int = opt(20, "grid points per axis")


@dataclass
class InterpolateConfig(PictureConfig):
    """``probgen interpolate``: walk between the codes of two test images."""

    out: str = opt("runs/interpolate", "a .png file, or a folder that receives interpolate.png")
    src: int = opt(0, "test image index", flag="--from")
    dst: int = opt(1, "test image index", flag="--to")
    steps: int = opt(10, "decoded points on the path, ends included")
    slerp: bool = opt(False, "add a row with spherical interpolation")


@dataclass
class StyleTransferConfig(PictureConfig):
    """``probgen style-transfer``: CVAE, test digits rewritten as every class."""

    out: str = opt("runs/style-transfer", "a .png file, or a folder that receives style_transfer.png")
    index: list = opt(None, "test image index(es)", nargs="+", default_factory=lambda: [0])


@dataclass
class PictureResult:
    """The grid written (``images``: raw, grid layout kept), its paths and a few numbers."""

    images: object
    paths: list[Path]
    numbers: dict
    lines: list[str]


# -- shared helpers ------------------------------------------------------------------------
def load_coder(cfg: PictureConfig, *, need_labels: bool = False):
    """Checkpoint + data set, checked against each other (seeded, on ``cfg.device``)."""
    import torch

    from ..models import load
    from .guard import check_kind, check_sizes, claim

    check_sizes(cfg)  # --steps, --index: bounded by the images one figure holds
    claim(cfg)  # --out: a .png or a folder; nothing replaced without --force
    seed_everything(cfg.seed)
    model = load(cfg.checkpoint, device=str(resolve_device(cfg.device)))
    check_kind(cfg, model, cfg.checkpoint)  # an encoder and a decoder (style-transfer: a transfer too)
    conditional = model.traits.labels
    ds = load_checkpoint_data(cfg.checkpoint, cfg.data, need_labels=need_labels or conditional)
    if ds.x_dim != model.x_dim:
        raise ValueError(f"{cfg.checkpoint}: the model takes {model.x_dim} values per image, "
                         f"--data {ds.name} has {ds.x_dim} (shape {ds.shape}); pass the data it was trained on")
    if cfg.label is not None:
        if not conditional:
            raise ValueError(f"--label: a {model.kind} checkpoint is not conditional (use a cvae)")
        if not 0 <= cfg.label < model.n_classes:
            raise ValueError(f"--label must lie in 0..{model.n_classes - 1}, got {cfg.label}")
    torch.manual_seed(cfg.seed)
    return model, ds


def _test_index(ds, index: int, flag: str) -> int:
    if not -len(ds.test) <= index < len(ds.test):
        raise ValueError(f"{flag} {index}: the test split has {len(ds.test)} images (0..{len(ds.test) - 1})")
    return index % len(ds.test)


def _wrote(cfg, *paths) -> str:
    names = [str(p) for p in paths] + ([str(cfg.npy)] if cfg.npy else [])
    return "wrote " + " and ".join(names)


def code_activity(model, x, y=None):
    """How much each code dimension is used on images ``x``, most used first.

    For a model with a posterior scale (VAE, CVAE): the average KL(q(z_d | x) ‖ N(0, 1)) per dimension,
    in nats (≈ 0: the dimension is ignored, decoding it shows nothing moving). For an auto-encoder
    (codes only): the variance of each code dimension over ``x``.

    :return: ``(scores [z_dim], what the scores are)``.
    """
    import torch

    with torch.no_grad():
        out = model.encode(x, y) if model.traits.labels else model.encode(x)
    if isinstance(out, tuple) and len(out) == 2:
        loc, scale = (t.detach().cpu().double() for t in out)
        kl = 0.5 * (loc ** 2 + scale ** 2 - 1) - scale.log()  # n × z_dim, KL(N(loc, scale²) ‖ N(0, 1))
        return kl.mean(0).float(), "average KL per dimension (nats)"
    codes = (out[0] if isinstance(out, tuple) else out).detach().cpu().double()
    return codes.var(0).float(), "variance of the codes"


def _pick_dims(cfg: TraverseConfig, model, ds) -> tuple[tuple[int, int], str]:
    """``cfg.dims``, or the two most active code dims on (up to 1000) test images, with a line saying why."""
    import torch

    conditional = model.traits.labels
    n = min(len(ds.test), 1000)
    scores, what = code_activity(model, ds.test[:n], ds.test_labels[:n] if conditional else None)
    shown = ", ".join(f"{d}: {float(scores[d]):.2f}" for d in torch.argsort(scores, descending=True)[:6].tolist())
    if cfg.dims is not None:
        i, j = (int(d) for d in cfg.dims)
        return (i, j), f"dims {i} and {j} as asked (--dims); {what} on {n} test images, most active first: {shown}"
    i, j = torch.argsort(scores, descending=True)[:2].tolist()
    quiet = int((scores < 0.05 * float(scores.max())).sum()) if float(scores.max()) > 0 else len(scores)
    return (i, j), (f"dims {i} and {j}: the two most active by {what} on {n} test images ({shown}); "
                    f"{quiet} of {len(scores)} dims are nearly unused (< 5% of the most active)")


# -- the pictures --------------------------------------------------------------------------
def traverse(cfg: TraverseConfig) -> PictureResult:
    """Fix all code dims at a base code except ``dims``, which sweep ``[-span, span]`` on a grid."""
    import torch

    from ..codes import neighbour_change, traversal
    from ..plots.vae import traversal_grid

    model, ds = load_coder(cfg)
    png = outputs_of(cfg)[0]  # --out: the file, or the command's file in that folder
    z_dim = model.z_dim
    if z_dim < 2:
        raise ValueError(f"traverse needs a code of at least 2 dims, this {model.kind} has z_dim={z_dim}")
    (i, j), why = _pick_dims(cfg, model, ds)
    if i == j or not (0 <= i < z_dim and 0 <= j < z_dim):
        raise ValueError(f"--dims {i} {j}: need two different dims in 0..{z_dim - 1}")
    if not cfg.span > 0:
        raise ValueError(f"--range must be > 0, got {cfg.span}")
    label = cfg.label
    conditional = model.traits.labels
    if cfg.base == "sample":
        base = torch.randn(z_dim)
    elif cfg.base == "zero":
        base = torch.zeros(z_dim)
    elif cfg.base.startswith("image:"):
        try:
            index = int(cfg.base.split(":", 1)[1])
        except ValueError:
            raise ValueError(f"--base {cfg.base}: expected image:INDEX with an integer INDEX") from None
        index = _test_index(ds, index, "--base image:")
        y = ds.test_labels[index:index + 1] if conditional else None
        base = encode_mean(model, ds.test[index:index + 1], y)[0].cpu()
        if label is None and y is not None:
            label = int(y[0])
    else:
        raise ValueError(f"--base {cfg.base!r}: use sample, zero or image:INDEX")
    if conditional and label is None:
        label = 0
    z = traversal(base, (i, j), span=cfg.span, steps=cfg.steps)  # rows × cols × z_dim
    images = decode_mean(model, z.reshape(-1, z_dim), label).cpu()
    grid = images.reshape(cfg.steps, cfg.steps, *images.shape[1:])
    traversal_grid(grid, png)
    write_npy(cfg.npy, grid)
    mean, peak = neighbour_change(grid)
    lines = [why, f"traversal of dims {i} (rows) and {j} (columns) over [-{cfg.span:g}, {cfg.span:g}], "
             f"{cfg.steps}×{cfg.steps}, base {cfg.base}" + (f", label {label}" if label is not None else ""),
             f"neighbouring images differ by {mean:.3f} mean |Δpixel| on average, {peak:.3f} at most",
             _wrote(cfg, png)]
    return PictureResult(grid, [png], {"label": label, "dims": [i, j], "neighbour_change_mean": mean,
                                                 "neighbour_change_max": peak}, lines)


def latent_map(cfg: LatentMapConfig) -> PictureResult:
    """A 2-D code: the decoded grid over ``[-span, span]²`` and a scatter of the test codes."""
    from ..codes import grid as code_grid
    from ..plots.vae import latent_map as map_figure, latent_scatter

    model, ds = load_coder(cfg)
    png = outputs_of(cfg)[0]  # --out: the file, or the command's file in that folder
    if model.z_dim != 2:
        raise ValueError(f"latent-map needs a 2-D code, this {model.kind} has z_dim={model.z_dim} "
                         f"(train one with --z-dim 2, or use `probgen traverse`)")
    if not cfg.span > 0:
        raise ValueError(f"--range must be > 0, got {cfg.span}")
    z = code_grid(span=cfg.span, steps=cfg.steps).reshape(-1, 2)  # top row = high z₂
    images = decode_mean(model, z, cfg.label).cpu()
    grid = images.reshape(cfg.steps, cfg.steps, *images.shape[1:])
    map_figure(grid, png)
    conditional = model.traits.labels
    codes = encode_mean(model, ds.test, ds.test_labels if conditional else None).cpu()
    scatter = png.with_name(png.stem + "_scatter.png")
    latent_scatter(codes, ds.test_labels, scatter, extent=cfg.span,
                   title=f"{model.kind}: test codes" + (" q(z | x, y)" if conditional else ""))
    write_npy(cfg.npy, grid)
    inside = float((codes.abs() <= cfg.span).all(-1).float().mean())
    lines = [f"decoded a {cfg.steps}×{cfg.steps} grid over [-{cfg.span:g}, {cfg.span:g}]²"
             + (f" as label {cfg.label if cfg.label is not None else 0}" if conditional else "")
             + f"; {100 * inside:.0f}% of the {len(codes)} test codes fall inside it",
             _wrote(cfg, png, scatter)]
    return PictureResult(grid, [png, scatter], {"inside": inside}, lines)


def interpolate(cfg: InterpolateConfig) -> PictureResult:
    """Walk between the codes of two test images (straight line; with ``slerp`` also a great circle)."""
    import torch

    from ..codes import lerp, slerp
    from ..plots.vae import interpolation_strip

    model, ds = load_coder(cfg)
    png = outputs_of(cfg)[0]  # --out: the file, or the command's file in that folder
    a, b = _test_index(ds, cfg.src, "--from"), _test_index(ds, cfg.dst, "--to")
    conditional = model.traits.labels
    ya = ds.test_labels[a:a + 1] if conditional else None
    yb = ds.test_labels[b:b + 1] if conditional else None
    za = encode_mean(model, ds.test[a:a + 1], ya)[0].cpu()
    zb = encode_mean(model, ds.test[b:b + 1], yb)[0].cpu()
    t = torch.linspace(0, 1, cfg.steps)
    label = None
    if conditional:
        import torch.nn.functional as F

        if cfg.label is not None:
            label = cfg.label
        else:  # walk the label too: soft one-hot from y_a to y_b
            oa, ob = F.one_hot(ya, model.n_classes).float(), F.one_hot(yb, model.n_classes).float()
            label = (1 - t[:, None]) * oa + t[:, None] * ob  # steps × C
    paths = [("linear", lerp(za, zb, t))]
    if cfg.slerp:
        paths.append(("spherical", slerp(za, zb, t)))
    rows = [torch.cat([ds.test[a:a + 1].cpu(), decode_mean(model, z, label).cpu(), ds.test[b:b + 1].cpu()])
            for _, z in paths]
    strip = torch.stack(rows)  # paths × (steps + 2) × H × W
    interpolation_strip(strip, png)
    write_npy(cfg.npy, strip)
    names = " and ".join(name for name, _ in paths)
    lines = [f"{names} interpolation between test images {a} and {b} in {cfg.steps} steps "
             f"(|z_from| = {float(za.norm()):.2f}, |z_to| = {float(zb.norm()):.2f})", _wrote(cfg, png)]
    return PictureResult(strip, [png], {"from": a, "to": b}, lines)


def style_transfer(cfg: StyleTransferConfig) -> PictureResult:
    """CVAE: each test image's style code decoded with every label (row: original, classes 0..C-1)."""
    import torch

    from ..plots.vae import traversal_grid

    model, ds = load_coder(cfg, need_labels=True)
    png = outputs_of(cfg)[0]
    c = model.n_classes
    rows, lines = [], []
    for index in cfg.index:
        k = _test_index(ds, index, "--index")
        x = ds.test[k:k + 1].repeat(c, *([1] * (ds.test.dim() - 1)))
        y = ds.test_labels[k:k + 1].repeat(c)
        out = model.transfer(x, y, torch.arange(c)).cpu()  # C × H × W: the same style, every class
        rows.append(torch.cat([ds.test[k:k + 1].cpu(), out]))
        lines.append(f"test image {k} (label {int(y[0])}) rewritten as classes 0..{c - 1}")
    grid = torch.stack(rows)  # rows × (1 + C) × H × W
    traversal_grid(grid, png)
    write_npy(cfg.npy, grid)
    return PictureResult(grid, [png], {}, lines + [_wrote(cfg, png)])
