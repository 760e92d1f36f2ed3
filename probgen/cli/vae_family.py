"""The VAE family on the command line: ``probgen train cvae|autoencoder`` and the lecture's
pictures, ``traverse``, ``latent-map``, ``interpolate``, ``why-vae``, ``style-transfer``.

Every picture command reads a checkpoint, writes one PNG (``--out``) and, with ``--npy``,
the raw images. ``traverse``, ``latent-map`` and ``interpolate`` work for any checkpoint
with ``encode``/``decode`` (VAE, CVAE, AutoEncoder); for a CVAE they also take ``--label``.
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from . import common
from .common import CLIError, add_data_args, add_fit_args, add_run_args, add_trainer

__all__ = ["register", "slerp", "lerp"]


def register(sub) -> None:
    add_trainer("cvae", "conditional VAE p(z) p(x | z, y), q(z | x, y) (SVI, Trace_ELBO); needs labels",
                _cvae_args, _cvae_run)
    add_trainer("autoencoder", "plain auto-encoder, same layers as the VAE, maximum likelihood of the "
                "reconstruction (no latent site, no KL)", _ae_args, _ae_run)
    try:
        from .spine import add_compare_evaluator
    except ImportError:  # pragma: no cover - the spine is always there
        pass
    else:
        add_compare_evaluator("autoencoder", _ae_compare)

    # -- traverse -----------------------------------------------------------------------
    t = sub.add_parser("traverse", help="fix all code dims but two, sweep those two on a grid",
                       description="Latent traversal: every code dimension is fixed at a base code except "
                                   "--dims I J, which sweep [-range, range] on a steps × steps grid "
                                   "(rows: dim I, top to bottom; columns: dim J, left to right).")
    _checkpoint_args(t, out="traverse.png")
    t.add_argument("--dims", type=int, nargs=2, default=(0, 1), metavar=("I", "J"),
                   help="the two code dimensions to sweep (default: 0 1)")
    t.add_argument("--range", dest="span", type=float, default=3.0,
                   help="sweep each dim over [-range, range] (default: 3)")
    t.add_argument("--steps", type=int, default=9, help="grid points per dim (default: 9)")
    t.add_argument("--base", default="sample",
                   help="the fixed code: sample (z ~ N(0, I)), zero, or image:INDEX (the posterior mean "
                        "of test image INDEX) (default: sample)")
    t.set_defaults(func=cmd_traverse)

    # -- latent map ---------------------------------------------------------------------
    m = sub.add_parser("latent-map", help="2-D code: decoded grid mosaic + scatter of test codes",
                       description="For a model with a 2-D code: decode a regular grid over [-range, range]² "
                                   "into one mosaic (--out), and scatter the test codes coloured by label "
                                   "(<out>_scatter.png).")
    _checkpoint_args(m, out="latent_map.png")
    m.add_argument("--range", dest="span", type=float, default=3.0, help="grid half-width (default: 3)")
    m.add_argument("--steps", type=int, default=20, help="grid points per axis (default: 20)")
    m.set_defaults(func=cmd_latent_map)

    # -- interpolate --------------------------------------------------------------------
    i = sub.add_parser("interpolate", help="walk between the codes of two test images",
                       description="Encode two test images, walk the straight line between their codes "
                                   "(and, with --slerp, the great circle as a second row), decode each step. "
                                   "Each row: original, steps, original.")
    _checkpoint_args(i, out="interpolate.png")
    i.add_argument("--from", dest="src", type=int, default=0, help="test image index (default: 0)")
    i.add_argument("--to", dest="dst", type=int, default=1, help="test image index (default: 1)")
    i.add_argument("--steps", type=int, default=10, help="decoded points on the path, ends included (default: 10)")
    i.add_argument("--slerp", action="store_true", help="add a row with spherical interpolation")
    i.set_defaults(func=cmd_interpolate)

    # -- style transfer -----------------------------------------------------------------
    s = sub.add_parser("style-transfer", help="CVAE: one test digit rewritten as every class",
                       description="Encode test image INDEX with its own label (the style code), decode "
                                   "that code with each label. Each row: original, then classes 0..C-1.")
    _checkpoint_args(s, out="style_transfer.png", label=False)
    s.add_argument("--index", type=int, nargs="+", default=[0], help="test image index(es) (default: 0)")
    s.set_defaults(func=cmd_style_transfer)

    # -- why VAE ------------------------------------------------------------------------
    w = sub.add_parser("why-vae", help="AE vs VAE: decode the same N(0, I) codes with both, judge the samples",
                       description="Train an AutoEncoder and a VAE with identical encoder/decoder sizes on the "
                                   "same data and seed, decode the same N(0, I) codes with both, and judge the "
                                   "samples with a digit classifier trained on the real data.")
    add_data_args(w)
    add_run_args(w, out="runs/why-vae")
    w.add_argument("--z-dim", type=int, default=10, help="code size of both models (default: 10)")
    w.add_argument("--hidden", default="256", help="hidden widths, comma-separated (default: 256)")
    w.add_argument("-n", dest="n_show", type=int, default=64, help="samples shown per panel (default: 64)")
    w.add_argument("--n-eval", type=int, default=1000, help="samples scored per model (default: 1000)")
    w.add_argument("--draws", action="store_true",
                   help="score Bernoulli/Normal draws instead of decoder mean images")
    w.add_argument("--npy", action="store_true", help="also write OUT/why_vae_samples.npz (raw images, codes)")
    w.add_argument("--classifier-epochs", type=int, default=None,
                   help="epochs of the judging classifier (default: metrics.train_classifier's)")
    add_fit_args(w, epochs=100, batch_size=128, lr=1e-3)
    w.set_defaults(func=cmd_why_vae)


def _checkpoint_args(p: argparse.ArgumentParser, *, out: str, label: bool = True) -> None:
    p.add_argument("checkpoint", help="a .pt file written by probgen (vae, cvae, autoencoder)")
    p.add_argument("--out", default=out, help=f"PNG file (default: {out})")
    p.add_argument("--npy", default=None, metavar="FILE", help="also save the raw images as .npy")
    if label:
        p.add_argument("--label", type=int, default=None,
                       help="CVAE only: class to decode as (default: the label of the image used)")
    add_data_args(p)
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")


# -- trainers ---------------------------------------------------------------------------
def _net_args(p: argparse.ArgumentParser, *, z_dim: int) -> None:
    p.add_argument("--z-dim", type=int, default=z_dim, help=f"code size (default: {z_dim})")
    p.add_argument("--hidden", default="256", help="hidden widths, comma-separated (default: 256)")
    p.add_argument("--likelihood", choices=("auto", "normal", "bernoulli"), default="auto",
                   help="auto: bernoulli for binary data, else normal")


def _likelihood(args, ds) -> str:
    return ("bernoulli" if ds.binarized else "normal") if args.likelihood == "auto" else args.likelihood


def _cvae_args(p: argparse.ArgumentParser) -> None:
    _net_args(p, z_dim=2)  # small: the label says which digit, the code only the style
    p.add_argument("--elbo", choices=("trace", "meanfield", "jit", "jit-meanfield"), default="meanfield",
                   help="meanfield = Trace_ELBO with the KL term in closed form (default); "
                        "trace = Trace_ELBO with a sampled KL")
    add_fit_args(p, epochs=300, batch_size=128, lr=1e-3)


def _cvae_run(args, ds, path: Path):
    from ..models import CVAE

    if ds.train_labels is None:
        raise CLIError(f"{ds.name}: a CVAE needs labels, and the data has none")
    model = CVAE(ds.x_dim, ds.n_classes, z_dim=args.z_dim, hidden=common.parse_int_list(args.hidden, "--hidden"),
                 likelihood=_likelihood(args, ds), x_shape=ds.shape, elbo=args.elbo)
    return common.fit_story(model, args, ds, path, labels=True)


def _ae_args(p: argparse.ArgumentParser) -> None:
    _net_args(p, z_dim=10)
    add_fit_args(p, epochs=300, batch_size=128, lr=1e-3)


def _ae_run(args, ds, path: Path):
    from ..models import AutoEncoder

    model = AutoEncoder(ds.x_dim, z_dim=args.z_dim, hidden=common.parse_int_list(args.hidden, "--hidden"),
                        likelihood=_likelihood(args, ds), x_shape=ds.shape)
    model = common.fit_story(model, args, ds, path)
    model.save(path)  # again: the best-epoch checkpoint predates the fitted code Gaussian
    return model


def _ae_compare(model, ds, args):
    """An AE has no density; score "code ~ fitted Gaussian, x ~ decoder" by importance sampling."""
    values = model.log_prob(ds.test.to(model.device), num_samples=args.num_samples)
    return values.cpu(), "IS, fitted code prior", args.num_samples


# -- shared helpers ---------------------------------------------------------------------
def _load(args, *, need_labels: bool = False):
    """Checkpoint + data set, checked against each other."""
    import torch

    if hasattr(args, "steps") and args.steps < 2:
        raise CLIError(f"--steps must be >= 2, got {args.steps}")
    if not str(args.out).lower().endswith(".png"):
        raise CLIError(f"--out {args.out}: must be a .png file")
    common.seed_everything(args.seed)
    model = common.load_model(args.checkpoint, device=str(common.resolve_device(args.device)))
    if not (hasattr(model, "encode") and hasattr(model, "decode")):
        raise CLIError(f"{args.checkpoint}: a {model.kind} checkpoint has no encoder/decoder "
                       "(use a vae, cvae or autoencoder checkpoint)")
    conditional = getattr(model, "needs_labels", False)
    ds = common.load_dataset(args, need_labels=need_labels or conditional)
    if ds.x_dim != model.x_dim:
        raise CLIError(f"{args.checkpoint}: the model takes {model.x_dim} values per image, "
                       f"--data {args.data} has {ds.x_dim} (shape {ds.shape}); pass the data it was trained on")
    label = getattr(args, "label", None)
    if label is not None:
        if not conditional:
            raise CLIError(f"--label: a {model.kind} checkpoint is not conditional (use a cvae)")
        if not 0 <= label < model.n_classes:
            raise CLIError(f"--label must lie in 0..{model.n_classes - 1}, got {label}")
    torch.manual_seed(args.seed)
    return model, ds


def _test_index(ds, index: int, flag: str) -> int:
    if not -len(ds.test) <= index < len(ds.test):
        raise CLIError(f"{flag} {index}: the test split has {len(ds.test)} images (0..{len(ds.test) - 1})")
    return index % len(ds.test)


def _encode(model, x, y=None):
    """Posterior mean (VAE, CVAE) or code (AE) of images ``x``, ``[n × z_dim]``."""
    out = model.encode(x, y) if getattr(model, "needs_labels", False) else model.encode(x)
    return out[0] if isinstance(out, tuple) else out


def _decode(model, z, y=None):
    """Mean images ``[n, H, W]`` for codes ``z [n × z_dim]`` (``y``: CVAE label, int or ``[n]`` or soft)."""
    if getattr(model, "needs_labels", False):
        return model.decode(z, 0 if y is None else y)
    return model.decode(z)


def _save_npy(path, images) -> None:
    """Raw images (grid layout kept, e.g. ``[rows, cols, H, W]``) as ``.npy``, atomically."""
    if path is None:
        return
    import numpy as np

    from ..io import atomic_write

    arr = images.detach().cpu().numpy()
    atomic_write(path, lambda f: np.save(f, arr))


def lerp(z0, z1, t):
    """Straight line: ``(1 - t) z0 + t z1`` for each ``t`` → ``[len(t) × z_dim]``."""
    t = t.reshape(-1, 1)
    return (1 - t) * z0 + t * z1


def slerp(z0, z1, t):
    """Great-circle path from ``z0`` to ``z1`` (Shoemake); linear when they are parallel.

    Under N(0, I) most mass sits near the sphere of radius √d, and the straight line
    between two typical codes passes through the improbable region near the origin.
    """
    import torch

    t = t.reshape(-1, 1)
    cos = torch.dot(z0, z1) / (z0.norm() * z1.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1 + 1e-7, 1 - 1e-7))
    if float(omega.sin()) < 1e-4:
        return lerp(z0, z1, t)
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)


def _neighbour_change(grid) -> tuple[float, float]:
    """Mean and max over neighbouring cells of the mean |Δpixel| (grid ``[R, C, H, W]``)."""
    import torch

    d = torch.cat([(grid[1:] - grid[:-1]).abs().mean((-2, -1)).flatten(),
                   (grid[:, 1:] - grid[:, :-1]).abs().mean((-2, -1)).flatten()])
    return float(d.mean()), float(d.max())


# -- commands ---------------------------------------------------------------------------
def cmd_traverse(args) -> int:
    import torch

    model, ds = _load(args)
    z_dim = model.z_dim
    i, j = args.dims
    if z_dim < 2:
        raise CLIError(f"traverse needs a code of at least 2 dims, this {model.kind} has z_dim={z_dim}")
    if i == j or not (0 <= i < z_dim and 0 <= j < z_dim):
        raise CLIError(f"--dims {i} {j}: need two different dims in 0..{z_dim - 1}")
    if not args.span > 0:
        raise CLIError(f"--range must be > 0, got {args.span}")
    label = args.label
    conditional = getattr(model, "needs_labels", False)
    if args.base == "sample":
        base = torch.randn(z_dim)
    elif args.base == "zero":
        base = torch.zeros(z_dim)
    elif args.base.startswith("image:"):
        try:
            index = int(args.base.split(":", 1)[1])
        except ValueError:
            raise CLIError(f"--base {args.base}: expected image:INDEX with an integer INDEX") from None
        index = _test_index(ds, index, "--base image:")
        y = ds.test_labels[index:index + 1] if conditional else None
        base = _encode(model, ds.test[index:index + 1], y)[0].cpu()
        if label is None and y is not None:
            label = int(y[0])
    else:
        raise CLIError(f"--base {args.base!r}: use sample, zero or image:INDEX")
    if conditional and label is None:
        label = 0
    values = torch.linspace(-args.span, args.span, args.steps)
    z = base.repeat(args.steps, args.steps, 1)  # rows × cols × z_dim
    z[:, :, i] = values[:, None]  # dim I down the rows
    z[:, :, j] = values[None, :]  # dim J along the columns
    images = _decode(model, z.reshape(-1, z_dim), label).cpu()
    grid = images.reshape(args.steps, args.steps, *images.shape[1:])
    from ..plots.vae import traversal_grid

    traversal_grid(grid, args.out)
    _save_npy(args.npy, grid)
    mean, peak = _neighbour_change(grid)
    print(f"traversal of dims {i} (rows) and {j} (columns) over [-{args.span:g}, {args.span:g}], "
          f"{args.steps}×{args.steps}, base {args.base}" + (f", label {label}" if label is not None else ""))
    print(f"neighbouring images differ by {mean:.3f} mean |Δpixel| on average, {peak:.3f} at most")
    print(f"wrote {args.out}" + (f" and {args.npy}" if args.npy else ""))
    return 0


def cmd_latent_map(args) -> int:
    import torch

    model, ds = _load(args)
    if model.z_dim != 2:
        raise CLIError(f"latent-map needs a 2-D code, this {model.kind} has z_dim={model.z_dim} "
                       f"(train one with --z-dim 2, or use `probgen traverse`)")
    if not args.span > 0:
        raise CLIError(f"--range must be > 0, got {args.span}")
    values = torch.linspace(-args.span, args.span, args.steps)
    z2, z1 = torch.meshgrid(values.flip(0), values, indexing="ij")  # top row = high z₂
    z = torch.stack([z1, z2], -1).reshape(-1, 2)
    images = _decode(model, z, args.label).cpu()
    grid = images.reshape(args.steps, args.steps, *images.shape[1:])
    from ..plots.vae import latent_map, latent_scatter

    latent_map(grid, args.out)
    conditional = getattr(model, "needs_labels", False)
    codes = _encode(model, ds.test, ds.test_labels if conditional else None).cpu()
    scatter = Path(args.out).with_name(Path(args.out).stem + "_scatter.png")
    latent_scatter(codes, ds.test_labels, scatter, extent=args.span,
                   title=f"{model.kind}: test codes" + (" q(z | x, y)" if conditional else ""))
    _save_npy(args.npy, grid)
    inside = float((codes.abs() <= args.span).all(-1).float().mean())
    print(f"decoded a {args.steps}×{args.steps} grid over [-{args.span:g}, {args.span:g}]²"
          + (f" as label {args.label if args.label is not None else 0}" if conditional else "")
          + f"; {100 * inside:.0f}% of the {len(codes)} test codes fall inside it")
    print(f"wrote {args.out} and {scatter}" + (f" and {args.npy}" if args.npy else ""))
    return 0


def cmd_interpolate(args) -> int:
    import torch

    model, ds = _load(args)
    a, b = _test_index(ds, args.src, "--from"), _test_index(ds, args.dst, "--to")
    conditional = getattr(model, "needs_labels", False)
    ya = ds.test_labels[a:a + 1] if conditional else None
    yb = ds.test_labels[b:b + 1] if conditional else None
    za = _encode(model, ds.test[a:a + 1], ya)[0].cpu()
    zb = _encode(model, ds.test[b:b + 1], yb)[0].cpu()
    t = torch.linspace(0, 1, args.steps)
    label = None
    if conditional:
        import torch.nn.functional as F

        if args.label is not None:
            label = args.label
        else:  # walk the label too: soft one-hot from y_a to y_b
            oa, ob = F.one_hot(ya, model.n_classes).float(), F.one_hot(yb, model.n_classes).float()
            label = (1 - t[:, None]) * oa + t[:, None] * ob  # steps × C
    paths = [("linear", lerp(za, zb, t))]
    if args.slerp:
        paths.append(("spherical", slerp(za, zb, t)))
    rows = []
    for _, z in paths:
        decoded = _decode(model, z, label).cpu()
        rows.append(torch.cat([ds.test[a:a + 1].cpu(), decoded, ds.test[b:b + 1].cpu()]))
    strip = torch.stack(rows)  # paths × (steps + 2) × H × W
    from ..plots.vae import interpolation_strip

    interpolation_strip(strip, args.out)
    _save_npy(args.npy, strip)
    names = " and ".join(name for name, _ in paths)
    print(f"{names} interpolation between test images {a} and {b} in {args.steps} steps "
          f"(|z_from| = {float(za.norm()):.2f}, |z_to| = {float(zb.norm()):.2f})")
    print(f"wrote {args.out}" + (f" and {args.npy}" if args.npy else ""))
    return 0


def cmd_style_transfer(args) -> int:
    import torch

    model, ds = _load(args, need_labels=True)
    if not hasattr(model, "transfer"):
        raise CLIError(f"{args.checkpoint}: style-transfer needs a cvae checkpoint, got {model.kind}")
    c = model.n_classes
    rows = []
    for index in args.index:
        k = _test_index(ds, index, "--index")
        x = ds.test[k:k + 1].repeat(c, *([1] * (ds.test.dim() - 1)))
        y = ds.test_labels[k:k + 1].repeat(c)
        out = model.transfer(x, y, torch.arange(c)).cpu()  # C × H × W: the same style, every class
        rows.append(torch.cat([ds.test[k:k + 1].cpu(), out]))
        print(f"test image {k} (label {int(y[0])}) rewritten as classes 0..{c - 1}")
    grid = torch.stack(rows)  # rows × (1 + C) × H × W
    from ..plots.vae import traversal_grid

    traversal_grid(grid, args.out)
    _save_npy(args.npy, grid)
    print(f"wrote {args.out}" + (f" and {args.npy}" if args.npy else ""))
    return 0


def cmd_why_vae(args) -> int:
    import torch

    from ..io import write_json
    from ..metrics import nearest_distance, sample_quality, train_classifier
    from ..models import VAE, AutoEncoder

    for flag, value in (("-n", args.n_show), ("--n-eval", args.n_eval), ("--z-dim", args.z_dim)):
        if value < 1:
            raise CLIError(f"{flag} must be >= 1, got {value}")
    hidden = common.parse_int_list(args.hidden, "--hidden")
    ds = common.load_dataset(args, need_labels=True)
    out = common.out_dir(args)
    lik = "bernoulli" if ds.binarized else "normal"
    print(f"data: {ds.describe()}")
    models = {}
    for name, build in (("autoencoder", lambda: AutoEncoder(ds.x_dim, z_dim=args.z_dim, hidden=hidden,
                                                              likelihood=lik, x_shape=ds.shape)),
                        ("vae", lambda: VAE(ds.x_dim, z_dim=args.z_dim, hidden=hidden, likelihood=lik,
                                            x_shape=ds.shape))):
        common.seed_everything(args.seed)  # same seed: same initial layers where shapes agree
        t0 = time.perf_counter()
        model = common.fit_story(build(), args, ds, out / f"{name}.pt")
        model.save(out / f"{name}.pt")
        model.eval()
        models[name] = model
        print(f"trained {name} ({model.n_params()} parameters) in {time.perf_counter() - t0:.1f} s")
    ae, vae = models["autoencoder"], models["vae"]

    common.seed_everything(args.seed)
    clf = train_classifier(ds, seed=args.seed, epochs=args.classifier_epochs)
    n = max(args.n_eval, args.n_show)
    z = torch.randn(n, args.z_dim)  # the same codes for both decoders
    kw = {} if args.draws else {"mean": True}
    samples = {
        "VAE, z ~ N(0, I)": vae.sample(n, z=z, **kw).cpu(),
        "AE, z ~ N(0, I)": ae.sample(n, z=z, **kw).cpu(),
        "AE, z ~ fitted Gaussian": ae.sample(n, code_prior="fitted", **kw).cpu(),
    }
    real = ds.test[:n].cpu()
    train = ds.train.cpu()
    rows = []
    for name, x in [("real test images", real), *samples.items()]:
        q = sample_quality(clf, x[:args.n_eval])
        rows.append({"name": name, "mean_confidence": q["mean_confidence"], "mean_entropy": q["mean_entropy"],
                     "nearest_train_distance": float(nearest_distance(x[:args.n_eval], train).mean()),
                     "coverage": q["coverage"], "max_class_fraction": q["max_class_fraction"],
                     "class_histogram": q["class_histogram"]})
    ae_codes = ae.encode(ds.train)
    code_norm = float(ae_codes.norm(dim=-1).mean())
    prior_norm = float(torch.randn(4096, args.z_dim).norm(dim=-1).mean())
    by = {r["name"]: r for r in rows}
    v, a = by["VAE, z ~ N(0, I)"], by["AE, z ~ N(0, I)"]
    vae_wins = v["mean_confidence"] > a["mean_confidence"]
    verdict = (f"{'VAE' if vae_wins else 'AE'} samples from N(0, I) look more like data: classifier confidence "
               f"{v['mean_confidence']:.3f} (VAE) vs {a['mean_confidence']:.3f} (AE)")

    # -- the table --------------------------------------------------------------------
    header = f"{'samples':<26}{'confidence ↑':>13}{'entropy ↓':>11}{'nearest train':>15}{'classes':>9}"
    print(f"\ndigit classifier trained on {ds.name} train: test accuracy {clf.test_accuracy:.3f}")
    print(f"scored {args.n_eval} {'draws' if args.draws else 'decoder mean images'} per row\n")
    print(header + "\n" + "-" * len(header))
    for r in rows:
        print(f"{r['name']:<26}{r['mean_confidence']:>13.3f}{r['mean_entropy']:>11.3f}"
              f"{r['nearest_train_distance']:>15.2f}{r['coverage'] * 10:>7.0f}/10")
    print(f"\nAE training codes: mean |code| = {code_norm:.2f}, vs {prior_norm:.2f} for z ~ N(0, I): "
          f"nothing in training ties the AE's codes to the prior")
    print("verdict: " + verdict)

    from ..plots.vae import why_vae_figure

    show = args.n_show
    nrow = max(1, int(math.ceil(math.sqrt(show))))
    panels = [(f"{name}\nconfidence {by[name]['mean_confidence']:.2f}, "
               f"{by[name]['coverage'] * 10:.0f}/10 classes", x[:show]) for name, x in samples.items()]
    panels.append((f"real test images\nconfidence {by['real test images']['mean_confidence']:.2f}", real[:show]))
    fig_path = why_vae_figure(panels, out / "why_vae.png", nrow=nrow,
                              suptitle=f"same N(0, I) codes, same layer sizes ({ds.name}, z_dim={args.z_dim})")
    result = {"data": ds.name, "seed": args.seed, "z_dim": args.z_dim, "hidden": list(hidden),
              "epochs": args.epochs, "samples": "draws" if args.draws else "decoder means",
              "n_eval": args.n_eval, "classifier_test_accuracy": clf.test_accuracy,
              "ae_code_mean_norm": code_norm, "prior_mean_norm": prior_norm,
              "rows": rows, "vae_wins": vae_wins, "verdict": verdict}
    write_json(out / "why_vae.json", result)
    if args.npy:
        import numpy as np

        from ..io import atomic_write

        arrays = {"vae": samples["VAE, z ~ N(0, I)"].numpy(), "ae": samples["AE, z ~ N(0, I)"].numpy(),
                  "ae_fitted": samples["AE, z ~ fitted Gaussian"].numpy(), "z": z.numpy()}
        atomic_write(out / "why_vae_samples.npz", lambda f: np.savez(f, **arrays))
    print(f"wrote {fig_path}, {out / 'why_vae.json'}" + (f", {out / 'why_vae_samples.npz'}" if args.npy else "")
          + f" and checkpoints in {out}/")
    return 0
