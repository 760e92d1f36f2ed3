"""GAN commands: ``probgen train gan``, ``probgen gan-toy``, ``probgen walk``, ``probgen gan-eval``.

Also registers the Parzen-window scorer so that ``probgen compare --models ...,gan`` can put a
GAN in the likelihood table (marked estimator "Parzen": a weak estimator).
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from . import common
from .common import CLIError, add_data_args, add_run_args

__all__ = ["register", "TOY_TARGETS"]

#: 1-D toy targets: name -> list of (weight, mean, std)
TOY_TARGETS = {
    "mixture": [(0.5, -2.0, 0.5), (0.5, 2.0, 0.5)],
    "gaussian": [(1.0, 1.0, 1.0)],
}


def register(sub) -> None:
    common.add_trainer("gan", "generative adversarial network (own adversarial loop, not SVI; MLP or DCGAN)",
                       _gan_args, _gan_run)
    from .spine import add_compare_evaluator

    add_compare_evaluator("gan", _compare_parzen)

    # -- gan-toy ----------------------------------------------------------------------
    t = sub.add_parser("gan-toy", help="the 1-D GAN toy: data density, generator density and D(x) over training",
                       description="Train a small GAN on 1-D data and draw the lecture's picture: data density, "
                                   "the generator's histogram/KDE and the discriminator curve at several steps. "
                                   "Writes toy.png, toy.json (1-D Wasserstein distance per step), toy.gif.")
    t.add_argument("--target", choices=sorted(TOY_TARGETS), default="mixture",
                   help="mixture: 0.5 N(-2, 0.5²) + 0.5 N(2, 0.5²); gaussian: N(1, 1) (default: mixture)")
    t.add_argument("--steps", type=int, default=3000, help="generator steps (default: 3000)")
    t.add_argument("--snapshots", type=int, default=6, help="panels in the figure / GIF frames (default: 6)")
    t.add_argument("--eval-every", type=int, default=10, help="compute W₁ every N steps (default: 10)")
    _model_flags(t, z_dim=4, hidden="64,64", loss="non-saturating")
    _game_flags(t, batch_size=256, lr=1e-3)
    t.add_argument("--no-lr-decay", action="store_true",
                   help="keep the learning rates constant (default: linear decay to 0 over the second half)")
    t.add_argument("--no-gif", action="store_true", help="skip the animated GIF")
    add_run_args(t, out="runs/gan-toy")
    t.set_defaults(func=cmd_gan_toy)

    # -- walk -------------------------------------------------------------------------
    w = sub.add_parser("walk", help="move through code space between random codes (linear and spherical)",
                       description="Draw n random codes z ~ N(0, I), move from each to the next in --steps steps "
                                   "along a straight line and along a great circle, and decode every step. "
                                   "Works for any checkpoint with decode(z) and z_dim (GAN, VAE).")
    w.add_argument("checkpoint", help="a GAN or VAE .pt file")
    w.add_argument("--n", type=int, default=5, help="number of codes; n-1 walks (default: 5)")
    w.add_argument("--steps", type=int, default=8, help="images per walk, endpoints included (default: 8)")
    w.add_argument("--out", default="walk.png",
                   help="figure (default: walk.png); also writes <stem>_linear.png, <stem>_spherical.png, <stem>.json")
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--device", default="cpu")
    w.set_defaults(func=cmd_walk)

    # -- gan-eval ---------------------------------------------------------------------
    e = sub.add_parser("gan-eval", help="judge samples with a digit classifier: coverage, confidence, Fréchet distance",
                       description="Train a classifier on the real training set (its test accuracy is printed), "
                                   "then, for each checkpoint (GAN, VAE, CVAE, PixelCNN, ...): class histogram of "
                                   "its samples, fraction of classes covered, mean confidence, and the Fréchet "
                                   "distance to the test set in the classifier's feature space (NOT Inception FID).")
    e.add_argument("checkpoints", nargs="+", help=".pt files written by probgen")
    e.add_argument("-n", type=int, default=1000, help="samples per model (default: 1000)")
    e.add_argument("--mean", action="store_true", help="use decoder means where the model supports them (VAE)")
    add_data_args(e, binarize_default=False)
    add_run_args(e, out="runs/gan-eval")
    e.set_defaults(func=cmd_gan_eval)


HIDDEN_DEFAULTS = {"mlp": "128,256", "dcgan": "64,128"}


def _model_flags(p, *, z_dim: int, hidden: str | None, loss: str, arch: bool = False) -> None:
    g = p.add_argument_group("model")
    if arch:
        g.add_argument("--arch", choices=("auto", "mlp", "dcgan"), default="auto",
                       help="mlp, or dcgan (convolutional; H, W divisible by 4); auto: dcgan for such "
                            "images, else mlp (default: auto)")
    g.add_argument("--z-dim", type=int, default=z_dim, help=f"code size (default: {z_dim})")
    g.add_argument("--hidden", default=hidden,
                   help="MLP: generator widths (D mirrors them); dcgan: channels, image side first "
                        f"(default: {hidden or ', '.join(f'{k} {v}' for k, v in HIDDEN_DEFAULTS.items())})")
    g.add_argument("--loss", choices=("minimax", "non-saturating", "wgan-gp"), default=loss,
                   help=f"adversarial objective (default: {loss})")
    g.add_argument("--dropout", type=float, default=0.0, help="dropout in the discriminator (default: 0)")


def _game_flags(p, *, batch_size: int, lr: float, epochs: int | None = None) -> None:
    g = p.add_argument_group("training")
    if epochs is not None:
        g.add_argument("--epochs", type=int, default=epochs, help=f"passes over the data (default: {epochs})")
        g.add_argument("--resume", action="store_true", help="continue from OUT/gan.last.pt if present")
    g.add_argument("--batch-size", type=int, default=batch_size, help=f"(default: {batch_size})")
    g.add_argument("--lr", type=float, default=lr, help=f"Adam learning rate, both players (default: {lr})")
    g.add_argument("--beta1", type=float, default=0.5, help="Adam β1 (default: 0.5, as in DCGAN)")
    g.add_argument("--d-steps", type=int, default=1, help="discriminator steps per generator step, k (default: 1)")
    g.add_argument("--n-critic", type=int, default=5, help="critic steps per generator step for wgan-gp (default: 5)")
    g.add_argument("--gp-weight", type=float, default=10.0, help="gradient-penalty weight λ for wgan-gp (default: 10)")
    g.add_argument("--gp-one-sided", action="store_true",
                   help="wgan-gp: penalise only gradient norms above 1 (needed for 1-D data, see docs/gan.md)")
    g.add_argument("--smoothing", type=float, default=0.1,
                   help="one-sided label smoothing: real target 1-s (default: 0.1; 0 disables)")
    g.add_argument("--instance-noise", type=float, default=0.0,
                   help="std of noise added to D's inputs, annealed to 0 (default: 0)")


def _check_game_args(args) -> None:
    for name in ("batch_size", "d_steps", "n_critic", "z_dim"):
        if getattr(args, name) < 1:
            raise CLIError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not args.lr > 0:
        raise CLIError(f"--lr must be > 0, got {args.lr}")
    if not 0 <= args.smoothing < 0.5:
        raise CLIError(f"--smoothing must be in [0, 0.5), got {args.smoothing}")
    if args.instance_noise < 0:
        raise CLIError(f"--instance-noise must be >= 0, got {args.instance_noise}")


# -- probgen train gan ------------------------------------------------------------------------
def _gan_args(p: argparse.ArgumentParser) -> None:
    p.set_defaults(binarize=False)  # a GAN's sigmoid output is a grey level: train on grey digits
    _model_flags(p, z_dim=16, hidden=None, loss="non-saturating", arch=True)
    _game_flags(p, batch_size=64, lr=2e-4, epochs=100)
    p.add_argument("--grid-every", type=int, default=1,
                   help="write the fixed-noise sample grid every N epochs to OUT/gan_grids/ (default: 1; 0: never)")
    p.add_argument("--no-monitor", action="store_true",
                   help="skip the per-epoch classifier check (coverage, mode-collapse warning)")


def _gan_run(args, ds, path: Path):
    import torch

    from ..io import write_json
    from ..models import GAN
    from ..plots import gan as gplots

    _check_game_args(args)
    if args.epochs < 0:
        raise CLIError(f"--epochs must be >= 0, got {args.epochs}")
    arch = args.arch
    if arch == "auto":
        arch = "dcgan" if len(ds.shape) == 2 and ds.shape[0] % 4 == 0 and ds.shape[1] % 4 == 0 else "mlp"
    hidden = common.parse_int_list(args.hidden or HIDDEN_DEFAULTS[arch], "--hidden")
    model = GAN(arch, x_shape=list(ds.shape), z_dim=args.z_dim, hidden=list(hidden), loss=args.loss,
                dropout=args.dropout).to(common.resolve_device(args.device))
    clf, monitor = None, None
    if ds.train_labels is not None and not args.no_monitor and len(ds.shape) == 2:
        from ..metrics import sample_quality, train_classifier

        clf = train_classifier(ds, seed=args.seed)
        if not args.quiet:
            print(f"monitor: digit classifier, test accuracy {clf.test_accuracy:.3f}")
        keys = ("coverage", "max_class_fraction", "mean_confidence")

        def monitor(samples):
            q = sample_quality(clf, samples)
            return {k: q[k] for k in keys}
    grids = path.parent / f"{path.stem}_grids"

    def on_epoch(epoch, record, fixed):
        if args.grid_every and (epoch + 1) % args.grid_every == 0 and fixed.dim() == 3:
            common.save_images(fixed.cpu(), grids / f"epoch_{epoch + 1:04d}.png", nrow=8)

    t0 = time.perf_counter()
    model.fit(ds.train, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, d_steps=args.d_steps,
              n_critic=args.n_critic, smoothing=args.smoothing, instance_noise=args.instance_noise,
              gp_weight=args.gp_weight, gp_one_sided=args.gp_one_sided, beta1=args.beta1, progress=not args.quiet, checkpoint=path,
              resume=args.resume, monitor=monitor, on_epoch=on_epoch)
    fit_seconds = time.perf_counter() - t0
    model.fit_parzen(ds.val, binary=ds.binarized)  # so that log_prob / compare work from the checkpoint
    history = model.train_result.history
    extra = {"fit_seconds": fit_seconds, "history": history, "warnings": model.train_result.warnings}
    summary = {"fit_seconds": fit_seconds, "steps": model.train_result.steps,
               "mode_collapse_warnings": model.train_result.warnings,
               "parzen_bandwidth": float(model.parzen_bandwidth)}
    if clf is not None:
        from ..metrics import frechet_distance, sample_quality

        torch.manual_seed(args.seed)
        samples = model.sample(1000)
        q = sample_quality(clf, samples)
        fd = frechet_distance(clf, ds.test, samples)
        summary.update({"classifier_test_accuracy": clf.test_accuracy, "classes_found": _classes_found(q),
                        "coverage": q["coverage"], "max_class_fraction": q["max_class_fraction"],
                        "mean_confidence": q["mean_confidence"], "class_histogram": q["class_histogram"],
                        "frechet_classifier_features": fd})
        extra["quality"] = {k: v for k, v in summary.items() if k != "mode_collapse_warnings"}
        print(_quality_line("gan", q, fd))
    model.save(path, extra=extra)
    out = path.parent
    write_json(out / f"{path.stem}_history.json", {"history": history, "summary": summary})
    if history:
        gplots.training_curves(history, out / f"{path.stem}_training.png", wgan=args.loss == "wgan-gp")
    common.save_images(model.sample(64).cpu(), out / f"{path.stem}_samples.png", nrow=8)
    model.checkpoint_extra = extra
    return model


def _classes_found(q: dict) -> int:
    return int(sum(h >= 0.01 for h in q["class_histogram"]))


def _quality_line(name: str, q: dict, fd: float) -> str:
    return (f"{name}: classes found {_classes_found(q)}/{len(q['class_histogram'])}, max class fraction "
            f"{q['max_class_fraction']:.3f}, mean confidence {q['mean_confidence']:.3f}, "
            f"Fréchet distance (classifier features, not Inception FID) {fd:.2f}")


# -- compare: a Parzen-window score -------------------------------------------------------------
def _compare_parzen(model, ds, args):
    """Goodfellow et al. (2014) protocol: Parzen bandwidth on validation, score the test set."""
    k = max(int(args.num_samples), 10000)
    model.fit_parzen(ds.val, num_samples=k, binary=ds.binarized, seed=args.seed)
    values = model.log_prob(ds.test, num_samples=k, seed=args.seed + 1)
    print(f"gan: Parzen-window estimate (weak estimator), bandwidth {float(model.parzen_bandwidth):.3g} "
          f"chosen on validation, {k} generator samples")
    return values.cpu(), "Parzen", k


# -- gan-toy ------------------------------------------------------------------------------------
def _toy_sampler(name: str):
    import torch

    comps = TOY_TARGETS[name]
    w = torch.tensor([c[0] for c in comps])
    mu = torch.tensor([c[1] for c in comps])
    sd = torch.tensor([c[2] for c in comps])

    def sample(n: int) -> torch.Tensor:
        k = torch.multinomial(w, n, replacement=True)
        return (mu[k] + sd[k] * torch.randn(n)).unsqueeze(1)  # n × 1

    def pdf(x):
        import numpy as np

        x = np.asarray(x, dtype=np.float64)
        return sum(wi * np.exp(-0.5 * ((x - m) / s) ** 2) / (s * np.sqrt(2 * np.pi)) for wi, m, s in comps)

    spread = math.sqrt(sum(c[0] * (c[2] ** 2 + c[1] ** 2) for c in comps) - sum(c[0] * c[1] for c in comps) ** 2)
    return sample, pdf, spread


def cmd_gan_toy(args) -> int:
    import numpy as np
    import torch

    from ..io import write_json
    from ..models.gan import GAN, wasserstein_1d
    from ..plots import gan as gplots

    _check_game_args(args)
    if args.steps < 1:
        raise CLIError(f"--steps must be >= 1, got {args.steps}")
    if args.snapshots < 1:
        raise CLIError(f"--snapshots must be >= 1, got {args.snapshots}")
    if args.eval_every < 1:
        raise CLIError(f"--eval-every must be >= 1, got {args.eval_every}")
    common.seed_everything(args.seed)
    torch.manual_seed(args.seed)
    out = common.out_dir(args)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 1-D nets this small run faster on one thread than on several
    try:
        return _gan_toy(args, out)
    finally:
        torch.set_num_threads(threads)


def _gan_toy(args, out: Path) -> int:
    import numpy as np
    import torch

    from ..io import write_json
    from ..models.gan import GAN, wasserstein_1d
    from ..plots import gan as gplots

    sample_data, pdf, spread = _toy_sampler(args.target)
    model = GAN("mlp", x_shape=[1], z_dim=args.z_dim, hidden=list(common.parse_int_list(args.hidden, "--hidden")),
                loss=args.loss, output="linear", dropout=args.dropout, n_fixed=1)
    opt_d, opt_g = model.make_optimizers(args.lr, beta1=args.beta1)
    # constant learning rates for the first half, then linearly down to 0: the game keeps orbiting
    # its equilibrium at a constant step size, and the decay lets it settle
    decay = (lambda i: 1.0) if args.no_lr_decay else (lambda i: min(1.0, 2.0 * (1 - i / args.steps)))
    scheds = [torch.optim.lr_scheduler.LambdaLR(o, decay) for o in (opt_d, opt_g)]
    k = args.n_critic if args.loss == "wgan-gp" else args.d_steps
    grid = np.linspace(-5, 5, 400)
    snap_steps = sorted({int(round(s)) for s in np.linspace(0, args.steps, args.snapshots)})
    n_eval = 5000
    floor = wasserstein_1d(sample_data(n_eval), sample_data(n_eval))  # two data samples: the noise level

    def snapshot(step: int) -> dict:
        model.eval()
        with torch.no_grad():
            gen = model.sample(n_eval)[:, 0]
            d = model.discriminator(torch.as_tensor(grid, dtype=torch.float32).unsqueeze(1))
            d = d if args.loss == "wgan-gp" else torch.sigmoid(d)
        model.train()
        return {"step": step, "grid": grid, "data_pdf": pdf(grid), "samples": gen.numpy(), "d": d.numpy(),
                "w1": wasserstein_1d(gen, sample_data(n_eval))}

    curve, snaps = [], []
    if 0 in snap_steps:
        snaps.append(snapshot(0))
    model.train()
    t0 = time.perf_counter()
    bar = range(1, args.steps + 1)
    if not args.quiet:
        from tqdm.auto import tqdm

        bar = tqdm(bar, desc="gan-toy", unit="step", leave=False, dynamic_ncols=True, disable=None)
    for step in bar:
        noise = args.instance_noise * (1 - (step - 1) / args.steps)
        # fresh real batches from the target: the discriminator sees them, the generator never does
        real = [sample_data(args.batch_size) for _ in range(k)]
        stats = model.train_step(real, opt_d, opt_g, smoothing=args.smoothing, noise=noise,
                                 gp_weight=args.gp_weight, gp_one_sided=args.gp_one_sided,
                                 batch_size=args.batch_size)
        for sched in scheds:
            sched.step()
        if not all(math.isfinite(v) for v in stats.values()):
            raise CLIError(f"the game diverged at step {step} ({stats}); try a smaller --lr")
        if step % args.eval_every == 0 or step == args.steps:
            with torch.no_grad():
                w1 = wasserstein_1d(model.sample(n_eval)[:, 0], sample_data(n_eval))
            curve.append({"step": step, "wasserstein": w1, **stats})
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(D=f"{stats['d_loss']:.3f}", G=f"{stats['g_loss']:.3f}", W1=f"{w1:.3f}",
                                **{"D(x)": f"{stats['d_real']:.2f}", "D(G(z))": f"{stats['d_fake']:.2f}"})
        if step in snap_steps:
            snaps.append(snapshot(step))
    seconds = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        final = model.sample(20000)[:, 0]
    final_w1 = wasserstein_1d(final, sample_data(20000))
    comps = TOY_TARGETS[args.target]
    # mass of the generator near each target mode (nearest-mean assignment)
    mus = torch.tensor([c[1] for c in comps])
    nearest = (final.unsqueeze(1) - mus).abs().argmin(1)
    mode_mass = [float((nearest == i).float().mean()) for i in range(len(comps))]
    covered = all(m >= 0.5 * c[0] for m, c in zip(mode_mass, comps))  # each mode gets ≥ half its share
    result = {
        "target": args.target, "components": [{"weight": c[0], "mean": c[1], "std": c[2]} for c in comps],
        "loss": args.loss, "steps": args.steps, "seed": args.seed, "seconds": seconds,
        "lr": args.lr, "lr_decay": not args.no_lr_decay, "gp_one_sided": args.gp_one_sided,
        "data_std": spread, "wasserstein_floor": floor,
        "final_wasserstein": final_w1, "final_wasserstein_over_std": final_w1 / spread,
        "mode_mass": mode_mass, "all_modes_covered": covered,
        "snapshot_steps": [s["step"] for s in snaps],
        "snapshot_wasserstein": [s["w1"] for s in snaps],
        "per_step": curve,
    }
    write_json(out / "toy.json", result)
    wgan = args.loss == "wgan-gp"
    gplots.toy_figure(snaps, out / "toy.png", wgan=wgan,
                      title=f"1-D GAN ({args.loss}) on the {args.target} target")
    gplots.wasserstein_curve([c["step"] for c in curve], [c["wasserstein"] for c in curve],
                             out / "toy_wasserstein.png", floor=floor, spread=spread)
    gif = None if args.no_gif else gplots.toy_gif(snaps, out / "toy.gif", wgan=wgan)
    model.save(out / "toy_gan.pt", extra={"toy": {k: v for k, v in result.items() if k != "per_step"}})
    print(f"{args.target} target, {args.loss}, {args.steps} steps in {seconds:.1f} s: final W₁ = {final_w1:.3f} "
          f"({final_w1 / spread:.1%} of the data std {spread:.2f}; data-vs-data floor {floor:.3f}); "
          f"mass per mode {', '.join(f'{m:.2f}' for m in mode_mass)} -> "
          + ("all modes covered" if covered else "MODE(S) MISSED"))
    print(f"wrote {out / 'toy.png'}, {out / 'toy.json'}, {out / 'toy_wasserstein.png'}"
          + (f", {gif}" if gif else ""))
    return 0


# -- walk ---------------------------------------------------------------------------------------
def cmd_walk(args) -> int:
    import torch

    from ..io import write_json
    from ..models.gan import lerp, slerp
    from ..plots import gan as gplots

    if args.n < 2:
        raise CLIError(f"--n must be >= 2 (a walk needs two codes), got {args.n}")
    if args.steps < 2:
        raise CLIError(f"--steps must be >= 2, got {args.steps}")
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise CLIError(f"--out {out}: must be a .png file")
    model = common.load_model(args.checkpoint, device=str(common.resolve_device(args.device)))
    if not hasattr(model, "decode") or not hasattr(model, "z_dim"):
        raise CLIError(f"{args.checkpoint}: a {model.kind} model has no code space to walk (needs decode and z_dim)")
    common.seed_everything(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    codes = torch.randn(args.n, model.z_dim, generator=g)  # n × z_dim
    t = torch.linspace(0, 1, args.steps)
    paths = {"linear": [lerp(codes[i], codes[i + 1], t) for i in range(args.n - 1)],
             "spherical": [slerp(codes[i], codes[i + 1], t) for i in range(args.n - 1)]}
    images, norms = {}, {}
    with torch.no_grad():
        for name, ps in paths.items():
            z = torch.stack(ps)  # (n-1) × steps × z_dim
            try:
                x = model.decode(z.reshape(-1, model.z_dim).to(model.device)).cpu()
            except TypeError as e:  # e.g. a CVAE: decode(z, y) needs a label too
                raise CLIError(f"{args.checkpoint}: a {model.kind} model's decode needs more than a code ({e})") from None
            if x.dim() != 3:
                raise CLIError(f"{args.checkpoint}: walk draws images, and this model's examples have shape "
                               f"{tuple(x.shape[1:])}")
            images[name] = x.reshape(args.n - 1, args.steps, *x.shape[1:])
            norms[name] = z.norm(dim=-1)  # (n-1) × steps
    out.parent.mkdir(parents=True, exist_ok=True)
    stem = out.with_suffix("")
    for name in paths:
        common.save_images(images[name].reshape(-1, *images[name].shape[2:]), f"{stem}_{name}.png", nrow=args.steps)
    gplots.walk_figure(images["linear"].numpy(), images["spherical"].numpy(), out,
                       norms_linear=norms["linear"].numpy(), norms_spherical=norms["spherical"].numpy(),
                       title=f"walks through the code space of {Path(args.checkpoint).name} ({model.kind})")
    mid = args.steps // 2
    summary = {"checkpoint": str(args.checkpoint), "kind": model.kind, "z_dim": model.z_dim, "n": args.n,
               "steps": args.steps, "typical_norm": math.sqrt(model.z_dim),
               "norm_endpoints_mean": float(codes.norm(dim=1).mean()),
               "norm_middle_linear_mean": float(norms["linear"][:, mid].mean()),
               "norm_middle_spherical_mean": float(norms["spherical"][:, mid].mean()),
               "norms_linear": norms["linear"], "norms_spherical": norms["spherical"]}
    write_json(f"{stem}.json", summary)
    print(f"{args.n - 1} walks of {args.steps} steps through the {model.z_dim}-d code space of a {model.kind}; "
          f"mean ‖z‖ at the middle: linear {summary['norm_middle_linear_mean']:.2f}, spherical "
          f"{summary['norm_middle_spherical_mean']:.2f} (endpoints {summary['norm_endpoints_mean']:.2f}, "
          f"√d = {summary['typical_norm']:.2f})")
    print(f"wrote {out}, {stem}_linear.png, {stem}_spherical.png, {stem}.json")
    return 0


# -- gan-eval -----------------------------------------------------------------------------------
def cmd_gan_eval(args) -> int:
    import inspect

    import torch

    from ..io import write_json
    from ..metrics import frechet_distance, sample_quality, train_classifier
    from ..plots import gan as gplots

    if args.n < 2:
        raise CLIError(f"-n must be >= 2, got {args.n}")
    common.seed_everything(args.seed)
    ds = common.load_dataset(args, need_labels=True)
    out = common.out_dir(args)
    clf = train_classifier(ds, seed=args.seed)
    print(f"data: {ds.describe()}")
    print(f"judge: MLP digit classifier trained on the real training split, test accuracy {clf.test_accuracy:.3f}")
    floor = frechet_distance(clf, ds.test, ds.val)
    real_q = sample_quality(clf, ds.test)
    print(_quality_line("real test set", real_q, floor) + "  (validation vs test: the floor)")
    results: dict[str, dict] = {}
    names: dict[str, int] = {}
    for ckpt in args.checkpoints:
        model = common.load_model(ckpt, device=str(common.resolve_device(args.device)))
        if not hasattr(model, "sample"):
            raise CLIError(f"{ckpt}: a {model.kind} model cannot sample")
        kwargs = {}
        if args.mean and "mean" in inspect.signature(model.sample).parameters:
            kwargs["mean"] = True
        torch.manual_seed(args.seed)
        with torch.no_grad():
            try:
                x = model.sample(args.n, **kwargs)
            except TypeError as e:
                raise CLIError(f"{ckpt}: cannot draw unconditional samples ({e})") from None
        if isinstance(x, torch.Tensor) and x.dim() == 2 and x.shape[1] == ds.x_dim:
            x = x.reshape(len(x), *ds.shape)  # flat vectors from a model built without x_shape
        if not isinstance(x, torch.Tensor) or tuple(x.shape[1:]) != tuple(ds.shape):
            raise CLIError(f"{ckpt}: samples of shape {tuple(getattr(x, 'shape', ()))[1:]} do not match "
                           f"the data's {ds.shape} (pass the right --data)")
        x = x.float().cpu()
        q = sample_quality(clf, x)
        fd = frechet_distance(clf, ds.test, x)
        base = Path(ckpt).stem if Path(ckpt).stem not in names else f"{Path(ckpt).stem}#{len(names)}"
        names[base] = 1
        results[base] = {"checkpoint": str(ckpt), "kind": model.kind, "n": args.n, "mean_images": bool(kwargs),
                         "classes_found": _classes_found(q), "coverage": q["coverage"],
                         "max_class_fraction": q["max_class_fraction"], "mean_confidence": q["mean_confidence"],
                         "mean_entropy": q["mean_entropy"], "class_histogram": q["class_histogram"],
                         "frechet_classifier_features": fd}
        common.save_images(x[:64], out / f"samples_{base}.png", nrow=8)
    header = f"{'model':<16}{'kind':<8}{'classes':>8}{'max frac':>10}{'mean conf':>11}{'Fréchet*':>10}"
    print("\n" + header + "\n" + "-" * len(header))
    print(f"{'(real test)':<16}{'data':<8}{_classes_found(real_q):>8}{real_q['max_class_fraction']:>10.3f}"
          f"{real_q['mean_confidence']:>11.3f}{floor:>10.2f}")
    for name, r in results.items():
        print(f"{name:<16}{r['kind']:<8}{r['classes_found']:>8}{r['max_class_fraction']:>10.3f}"
              f"{r['mean_confidence']:>11.3f}{r['frechet_classifier_features']:>10.2f}")
    print("* Fréchet distance to the test set in the digit classifier's feature space (lower is better). "
          "It is NOT Inception FID: comparable only within probgen, on the same data.")
    write_json(out / "eval.json", {"data": ds.name, "binarized": ds.binarized, "seed": args.seed,
                                   "classifier_test_accuracy": clf.test_accuracy, "frechet_floor_val_vs_test": floor,
                                   "note": "Fréchet distance in the classifier's penultimate features, not Inception FID",
                                   "models": results})
    gplots.class_histograms({"real test": {"class_histogram": real_q["class_histogram"]}, **results},
                            out / "class_histograms.png")
    print(f"wrote {out / 'eval.json'}, {out / 'class_histograms.png'} and sample grids in {out}/")
    return 0
