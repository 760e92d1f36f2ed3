"""Recipes of the GAN family: the 1-D toy (``gan_toy``), walks through code space (``walk``) and
judging samples with a digit classifier (``judge``, the ``gan-eval`` command).

The toy trains through the one adversarial trainer (:func:`probgen.infer.adversarial.fit_adversarial`),
streaming fresh real batches from the target density; the 1-D Wasserstein distance is
:func:`scipy.stats.wasserstein_distance`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from .config import (DataConfig, RunConfig, device_opt, load_data, opt, out_dir, parse_int_list, resolve_device,
                     runs_in, seed_everything, threads_opt, with_device)

__all__ = ["TOY_TARGETS", "GameConfig", "GanToyConfig", "WalkConfig", "JudgeConfig", "ToyResult", "WalkResult",
           "JudgeResult", "gan_toy", "walk", "judge", "toy_target", "quality_line"]

#: 1-D toy targets: name -> list of (weight, mean, std)
TOY_TARGETS = {
    "mixture": [(0.5, -2.0, 0.5), (0.5, 2.0, 0.5)],
    "gaussian": [(1.0, 1.0, 1.0)],
}


@dataclass
class GameConfig:
    """The model and the options of the adversarial game (shared by ``train gan``, in
    :mod:`probgen.recipes.adversarial`, and the toy)."""

    z_dim: int = opt(16, "code size")
    hidden: str | None = opt(None, "MLP: generator widths (D mirrors them); dcgan: channels, image side first "
                                   "(default: mlp 128,256; dcgan 64,128)")
    loss: str = opt("non-saturating", "adversarial objective",
                    choices=("minimax", "non-saturating", "wgan-gp", "hinge"))
    dropout: float = opt(0.0, "dropout in the discriminator")
    spectral_norm: bool = opt(False, "spectrally normalise the discriminator's layers (Miyato et al. 2018)")
    ema: float = opt(0.0, "sample from an exponential moving average of G's weights with this decay (0: off)")
    batch_size: int = opt(64, "examples per step")
    lr: float = opt(2e-4, "Adam learning rate of G (and of D unless --lr-d)")
    lr_d: float | None = opt(None, "Adam learning rate of D (two time scales; default: --lr)")
    beta1: float = opt(0.5, "Adam β1 (0.5, as in DCGAN)")
    d_steps: int = opt(1, "discriminator steps per generator step, k")
    n_critic: int = opt(5, "critic steps per generator step for wgan-gp")
    gp_weight: float = opt(10.0, "gradient-penalty weight λ for wgan-gp")
    gp_one_sided: bool = opt(False, "wgan-gp: penalise only gradient norms above 1 (needed for 1-D data, "
                                    "see docs/gan.md)")
    smoothing: float = opt(0.1, "one-sided label smoothing: real target 1-s (0 disables)")
    instance_noise: float = opt(0.0, "std of noise added to D's inputs, annealed to 0")
    threads: int | None = threads_opt()

    def check(self) -> None:
        for name in ("batch_size", "d_steps", "n_critic", "z_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0 or not (self.lr_d is None or self.lr_d > 0):
            raise ValueError(f"--lr and --lr-d must be > 0, got {self.lr} and {self.lr_d}")
        if not 0 <= self.ema < 1:
            raise ValueError(f"--ema must be in [0, 1) (0: off), got {self.ema}")
        if not 0 <= self.smoothing < 0.5:
            raise ValueError(f"--smoothing must be in [0, 0.5), got {self.smoothing}")
        if self.instance_noise < 0:
            raise ValueError(f"--instance-noise must be >= 0, got {self.instance_noise}")

    def game_options(self) -> dict:
        """The game's keyword options of :func:`~probgen.infer.adversarial.fit_adversarial`."""
        return dict(batch_size=self.batch_size, lr=self.lr, lr_d=self.lr_d, d_steps=self.d_steps, n_critic=self.n_critic,
                    smoothing=self.smoothing, instance_noise=self.instance_noise, gp_weight=self.gp_weight,
                    gp_one_sided=self.gp_one_sided, beta1=self.beta1)


@dataclass
class GanToyConfig(GameConfig):
    """``probgen gan-toy``: a small GAN on 1-D data streamed from a target density."""

    z_dim: int = opt(4, "code size")
    hidden: str | None = opt("64,64", "generator widths (D mirrors them)")
    batch_size: int = opt(256, "examples per step")
    lr: float = opt(1e-3, "Adam learning rate, both players")
    target: str = opt("mixture", "mixture: 0.5 N(-2, 0.5²) + 0.5 N(2, 0.5²); gaussian: N(1, 1)",
                      choices=("gaussian", "mixture"))
    steps: int = opt(3000, "generator steps")
    snapshots: int = opt(6, "panels in the figure / GIF frames")
    eval_every: int = opt(10, "compute W₁ every N steps")
    no_lr_decay: bool = opt(False, "keep the learning rates constant (default: linear decay to 0 over the "
                                   "second half)")
    no_gif: bool = opt(False, "skip the animated GIF")
    run: RunConfig = runs_in("runs/gan-toy")


@dataclass
class ToyResult:
    final_wasserstein: float
    wasserstein_floor: float
    mode_mass: list[float]
    all_modes_covered: bool
    summary: dict  # what toy.json holds
    paths: list[Path]
    lines: list[str]


@dataclass
class WalkConfig:
    """``probgen walk``: random codes, and the straight and great-circle paths between them."""

    checkpoint: str = opt("", "a GAN or VAE .pt file")
    n: int = opt(5, "number of codes; n-1 walks", flag="--n")
    steps: int = opt(8, "images per walk, endpoints included")
    out: str = opt("runs/walk", "a .png file (also writes <stem>_linear.png, <stem>_spherical.png, <stem>.json), "
                                "or a folder that receives walk.png and those")
    seed: int = opt(0, "random seed")
    device: str = device_opt()
    force: bool = opt(False, "replace the files this command writes if they exist")


@dataclass
class WalkResult:
    summary: dict
    paths: list[Path]
    lines: list[str]


@dataclass
class JudgeConfig:
    """``probgen gan-eval``: judge each checkpoint's samples with a digit classifier."""

    checkpoints: list = opt(None, ".pt files written by probgen", default_factory=list)
    n: int = opt(1000, "samples per model", flag="-n")
    mean: bool = opt(False, "use decoder means where the model supports them (VAE)")
    data: DataConfig = field(default_factory=lambda: DataConfig(binarize=False))
    run: RunConfig = runs_in("runs/gan-eval")


@dataclass
class JudgeResult:
    classifier_test_accuracy: float
    frechet_floor: float
    models: dict[str, dict]
    summary: dict  # what eval.json holds
    paths: list[Path]
    lines: list[str]


def quality_line(name: str, q: dict, fd: float) -> str:
    """One line on a batch of samples: classes found, max class fraction, confidence, Fréchet distance."""
    from ..metrics import classes_found

    return (f"{name}: classes found {classes_found(q)}/{len(q['class_histogram'])}, max class fraction "
            f"{q['max_class_fraction']:.3f}, mean confidence {q['mean_confidence']:.3f}, "
            f"Fréchet distance (classifier features, not Inception FID) {fd:.2f}")


# -- the 1-D toy ---------------------------------------------------------------------------------
def toy_target(name: str, device="cpu"):
    """``(sample(n) -> [n, 1], pdf(x) -> array, std)`` of a :data:`TOY_TARGETS` mixture (samples on ``device``)."""
    import numpy as np
    import torch

    comps = TOY_TARGETS[name]
    w, mu, sd = (torch.tensor([c[i] for c in comps], device=device) for i in range(3))

    def sample(n: int) -> torch.Tensor:
        k = torch.multinomial(w, n, replacement=True)
        return (mu[k] + sd[k] * torch.randn(n, device=device)).unsqueeze(1)  # n × 1

    def pdf(x):
        x = np.asarray(x, dtype=np.float64)
        return sum(wi * np.exp(-0.5 * ((x - m) / s) ** 2) / (s * np.sqrt(2 * np.pi)) for wi, m, s in comps)

    spread = math.sqrt(sum(c[0] * (c[2] ** 2 + c[1] ** 2) for c in comps) - sum(c[0] * c[1] for c in comps) ** 2)
    return sample, pdf, spread


def _w1(a, b) -> float:
    from scipy.stats import wasserstein_distance

    return float(wasserstein_distance(a.reshape(-1).double().cpu().numpy(), b.reshape(-1).double().cpu().numpy()))


def gan_toy(cfg: GanToyConfig) -> ToyResult:
    """Train a small GAN on 1-D data; draw data density, generator density and D(x) at several steps."""
    import torch

    from .guard import check_sizes, claim

    cfg.check()
    check_sizes(cfg)
    claim(cfg)  # nothing in --out replaced without --force
    if cfg.target not in TOY_TARGETS:
        raise ValueError(f"--target {cfg.target!r}: use one of {', '.join(sorted(TOY_TARGETS))}")
    for flag, v in (("--steps", cfg.steps), ("--snapshots", cfg.snapshots), ("--eval-every", cfg.eval_every)):
        if v < 1:
            raise ValueError(f"{flag} must be >= 1, got {v}")
    seed_everything(cfg.run.seed)
    torch.manual_seed(cfg.run.seed)
    out = out_dir(cfg.run.out)
    from ..runtime import set_threads

    threads = torch.get_num_threads()
    n = set_threads(cfg.threads or 1)  # 1-D nets this small run faster on one thread than on several
    device = resolve_device(cfg.run.device, threads=n)
    try:
        return _gan_toy(cfg, out, device)
    finally:
        torch.set_num_threads(threads)


def _gan_toy(cfg: GanToyConfig, out: Path, device) -> ToyResult:
    import numpy as np
    import torch

    from ..infer.adversarial import fit_adversarial
    from ..infer.callbacks import Checkpointer
    from ..io import run_files, write_json
    from ..models.gan import GAN
    from ..plots import gan as gplots

    sample_data, pdf, spread = toy_target(cfg.target, device)
    model = GAN("mlp", x_shape=[1], z_dim=cfg.z_dim, hidden=list(parse_int_list(cfg.hidden, "--hidden")),
                loss=cfg.loss, output="linear", dropout=cfg.dropout, spectral_norm=cfg.spectral_norm, ema=cfg.ema,
                n_fixed=1).to(device)
    wgan = cfg.loss == "wgan-gp"
    grid = np.linspace(-5, 5, 400)
    snap_steps = sorted({int(round(s)) for s in np.linspace(0, cfg.steps, cfg.snapshots)})
    n_eval = 5000
    floor = _w1(sample_data(n_eval), sample_data(n_eval))  # two data samples: the noise level

    def snapshot(step: int) -> dict:
        model.eval()
        with torch.no_grad():
            gen = model.sample(n_eval)[:, 0].cpu()
            d = model.discriminator(torch.as_tensor(grid, dtype=torch.float32, device=device).unsqueeze(1))
            d = (d if wgan else torch.sigmoid(d)).cpu()
        model.train()
        return {"step": step, "grid": grid, "data_pdf": pdf(grid), "samples": gen.numpy(), "d": d.numpy(),
                "w1": _w1(gen, sample_data(n_eval))}

    curve, snaps = [], []
    if 0 in snap_steps:
        snaps.append(snapshot(0))

    def on_step(step: int, stats: dict) -> dict | None:
        shown = None
        if step % cfg.eval_every == 0 or step == cfg.steps:
            with torch.no_grad():
                w1 = _w1(model.sample(n_eval)[:, 0], sample_data(n_eval))
            curve.append({"step": step, "wasserstein": w1, **stats})
            shown = {"W1": f"{w1:.3f}"}
        if step in snap_steps:
            snaps.append(snapshot(step))
        return shown

    # constant learning rates for the first half, then linearly down to 0: the game keeps orbiting
    # its equilibrium at a constant step size, and the decay lets it settle
    decay = None if cfg.no_lr_decay else (lambda i: min(1.0, 2.0 * (1 - i / cfg.steps)))
    # fresh real batches from the target: the discriminator sees them, the generator never does
    res = fit_adversarial(model, sample_data, steps=cfg.steps, lr_lambda=decay, on_step=on_step,
                          progress=not cfg.run.quiet, desc="gan-toy", **cfg.game_options())
    seconds = res.seconds
    model.eval()
    with torch.no_grad():
        final = model.sample(20000)[:, 0].cpu()
    final_w1 = _w1(final, sample_data(20000))
    comps = TOY_TARGETS[cfg.target]
    # mass of the generator near each target mode (nearest-mean assignment)
    nearest = (final.unsqueeze(1) - torch.tensor([c[1] for c in comps])).abs().argmin(1)
    mode_mass = [float((nearest == i).float().mean()) for i in range(len(comps))]
    covered = all(m >= 0.5 * c[0] for m, c in zip(mode_mass, comps))  # each mode gets ≥ half its share
    summary = {
        "target": cfg.target, "components": [{"weight": c[0], "mean": c[1], "std": c[2]} for c in comps],
        "loss": cfg.loss, "steps": cfg.steps, "seed": cfg.run.seed, "seconds": seconds,
        "lr": cfg.lr, "lr_decay": not cfg.no_lr_decay, "gp_one_sided": cfg.gp_one_sided,
        "data_std": spread, "wasserstein_floor": floor,
        "final_wasserstein": final_w1, "final_wasserstein_over_std": final_w1 / spread,
        "mode_mass": mode_mass, "all_modes_covered": covered,
        "snapshot_steps": [s["step"] for s in snaps],
        "snapshot_wasserstein": [s["w1"] for s in snaps],
        "per_step": curve,
    }
    summary = with_device(summary, device, threads=torch.get_num_threads())
    write_json(out / "toy.json", summary)
    gplots.toy_figure(snaps, out / "toy.png", wgan=wgan, title=f"1-D GAN ({cfg.loss}) on the {cfg.target} target")
    gplots.wasserstein_curve([c["step"] for c in curve], [c["wasserstein"] for c in curve],
                             out / "toy_wasserstein.png", floor=floor, spread=spread)
    gif = None if cfg.no_gif else gplots.toy_gif(snaps, out / "toy.gif", wgan=wgan)
    # written once, as every trainer writes a final model (the toy streams its data: no infer.train around it)
    Checkpointer(model, run_files(out, "toy_gan").checkpoint).save_final(res, extra={"toy": {k: v for k, v in summary.items()
                                                                            if k != "per_step"}})
    lines = [f"{cfg.target} target, {cfg.loss}, {cfg.steps} steps in {seconds:.1f} s: final W₁ = {final_w1:.3f} "
             f"({final_w1 / spread:.1%} of the data std {spread:.2f}; data-vs-data floor {floor:.3f}); "
             f"mass per mode {', '.join(f'{m:.2f}' for m in mode_mass)} -> "
             + ("all modes covered" if covered else "MODE(S) MISSED"),
             f"wrote {out / 'toy.png'}, {out / 'toy.json'}, {out / 'toy_wasserstein.png'}" + (f", {gif}" if gif else "")]
    paths = [out / "toy.png", out / "toy.json", out / "toy_wasserstein.png", run_files(out, "toy_gan").checkpoint]
    paths += [gif] if gif else []
    return ToyResult(final_w1, floor, mode_mass, covered, summary, paths, lines)


# -- walks through code space ----------------------------------------------------------------
def walk(cfg: WalkConfig) -> WalkResult:
    """n random codes z ~ N(0, I); walk from each to the next along a line and a great circle."""
    import torch

    from ..codes import lerp, slerp
    from ..io import write_json
    from ..models import load
    from ..plots import gan as gplots, image_grid

    from .guard import check_kind, check_sizes, claim

    check_sizes(cfg)  # --n and --steps: the images of one figure
    out = claim(cfg)[0]  # --out: a .png or a folder; nothing replaced without --force
    device = resolve_device(cfg.device)
    model = load(cfg.checkpoint, device=str(device))
    check_kind("walk", model, cfg.checkpoint)  # decode(z) from a code alone
    seed_everything(cfg.seed)
    codes = torch.randn(cfg.n, model.z_dim, generator=torch.Generator().manual_seed(cfg.seed))  # n × z_dim
    t = torch.linspace(0, 1, cfg.steps)
    paths = {"linear": lerp, "spherical": slerp}
    images, norms = {}, {}
    with torch.no_grad():
        for name, path_fn in paths.items():
            z = torch.stack([path_fn(codes[i], codes[i + 1], t) for i in range(cfg.n - 1)])  # (n-1) × steps × z
            try:
                x = model.decode(z.reshape(-1, model.z_dim).to(model.device)).cpu()
            except TypeError as e:  # e.g. a CVAE: decode(z, y) needs a label too
                raise ValueError(f"{cfg.checkpoint}: a {model.kind} model's decode needs more than a code ({e})") from None
            if x.dim() != 3:
                raise ValueError(f"{cfg.checkpoint}: walk draws images, and this model's examples have shape "
                                 f"{tuple(x.shape[1:])}")
            images[name] = x.reshape(cfg.n - 1, cfg.steps, *x.shape[1:])
            norms[name] = z.norm(dim=-1)  # (n-1) × steps
    out.parent.mkdir(parents=True, exist_ok=True)
    stem = out.with_suffix("")
    for name in paths:
        image_grid(images[name].reshape(-1, *images[name].shape[2:]), f"{stem}_{name}.png", nrow=cfg.steps)
    gplots.walk_figure(images["linear"].numpy(), images["spherical"].numpy(), out,
                       norms_linear=norms["linear"].numpy(), norms_spherical=norms["spherical"].numpy(),
                       title=f"walks through the code space of {Path(cfg.checkpoint).name} ({model.kind})")
    mid = cfg.steps // 2
    summary = {"checkpoint": str(cfg.checkpoint), "kind": model.kind, "z_dim": model.z_dim, "n": cfg.n,
               "steps": cfg.steps, "typical_norm": math.sqrt(model.z_dim),
               "norm_endpoints_mean": float(codes.norm(dim=1).mean()),
               "norm_middle_linear_mean": float(norms["linear"][:, mid].mean()),
               "norm_middle_spherical_mean": float(norms["spherical"][:, mid].mean()),
               "norms_linear": norms["linear"], "norms_spherical": norms["spherical"]}
    summary = with_device(summary, device)
    write_json(f"{stem}.json", summary)
    lines = [f"{cfg.n - 1} walks of {cfg.steps} steps through the {model.z_dim}-d code space of a {model.kind}; "
             f"mean ‖z‖ at the middle: linear {summary['norm_middle_linear_mean']:.2f}, spherical "
             f"{summary['norm_middle_spherical_mean']:.2f} (endpoints {summary['norm_endpoints_mean']:.2f}, "
             f"√d = {summary['typical_norm']:.2f})",
             f"wrote {out}, {stem}_linear.png, {stem}_spherical.png, {stem}.json"]
    files = [out, Path(f"{stem}_linear.png"), Path(f"{stem}_spherical.png"), Path(f"{stem}.json")]
    return WalkResult(summary, files, lines)


# -- judging samples with a classifier ---------------------------------------------------------
def _draw(model, ckpt, n: int, *, mean: bool, seed: int, ds):
    """``n`` unconditional samples of a checkpoint's model, shaped like the data."""
    import torch

    kwargs = {"mean": True} if mean and "sample_mean" in model.traits.offers else {}
    torch.manual_seed(seed)
    with torch.no_grad():
        try:
            x = model.sample(n, **kwargs)
        except TypeError as e:
            raise ValueError(f"{ckpt}: cannot draw unconditional samples ({e})") from None
    if isinstance(x, torch.Tensor) and x.dim() == 2 and x.shape[1] == ds.x_dim:
        x = x.reshape(len(x), *ds.shape)  # flat vectors from a model built without x_shape
    if not isinstance(x, torch.Tensor) or tuple(x.shape[1:]) != tuple(ds.shape):
        raise ValueError(f"{ckpt}: samples of shape {tuple(getattr(x, 'shape', ()))[1:]} do not match "
                         f"the data's {ds.shape} (pass the right --data)")
    return x.float().cpu(), bool(kwargs)


def judge(cfg: JudgeConfig) -> JudgeResult:
    """A digit classifier trained on the real training split judges each checkpoint's samples:
    classes found, max class fraction, confidence, Fréchet distance in its feature space."""
    from ..io import write_json
    from ..metrics import classes_found, frechet_distance, sample_quality, train_classifier
    from ..models import load
    from ..plots import gan as gplots, image_grid

    from .guard import check_checkpoint, check_sizes, claim

    check_sizes(cfg)
    claim(cfg)  # nothing in --out replaced without --force
    for ckpt in cfg.checkpoints:  # before the classifier trains
        check_checkpoint("gan-eval", ckpt)
    seed = cfg.run.seed
    device = resolve_device(cfg.run.device)  # the checkpoints' device (the classifier trains on the CPU)
    seed_everything(seed)
    ds = load_data(cfg.data, need_labels=True)
    out = out_dir(cfg.run.out)
    clf = train_classifier(ds, seed=seed)
    lines = [f"data: {ds.describe()}",
             f"judge: MLP digit classifier trained on the real training split, test accuracy {clf.test_accuracy:.3f}"]
    floor = frechet_distance(clf, ds.test, ds.val)
    real_q = sample_quality(clf, ds.test)
    lines.append(quality_line("real test set", real_q, floor) + "  (validation vs test: the floor)")
    results: dict[str, dict] = {}
    for ckpt in cfg.checkpoints:
        model = load(ckpt, device=str(device))
        x, mean = _draw(model, ckpt, cfg.n, mean=cfg.mean, seed=seed, ds=ds)
        q = sample_quality(clf, x)
        fd = frechet_distance(clf, ds.test, x)
        base = Path(ckpt).stem if Path(ckpt).stem not in results else f"{Path(ckpt).stem}#{len(results)}"
        results[base] = {"checkpoint": str(ckpt), "kind": model.kind, "n": cfg.n, "mean_images": mean,
                         "classes_found": classes_found(q), "coverage": q["coverage"],
                         "max_class_fraction": q["max_class_fraction"], "mean_confidence": q["mean_confidence"],
                         "mean_entropy": q["mean_entropy"], "class_histogram": q["class_histogram"],
                         "frechet_classifier_features": fd}
        image_grid(x[:64], out / f"samples_{base}.png", nrow=8)
    header = f"{'model':<16}{'kind':<8}{'classes':>8}{'max frac':>10}{'mean conf':>11}{'Fréchet*':>10}"
    lines += ["\n" + header + "\n" + "-" * len(header),
              f"{'(real test)':<16}{'data':<8}{classes_found(real_q):>8}{real_q['max_class_fraction']:>10.3f}"
              f"{real_q['mean_confidence']:>11.3f}{floor:>10.2f}"]
    lines += [f"{name:<16}{r['kind']:<8}{r['classes_found']:>8}{r['max_class_fraction']:>10.3f}"
              f"{r['mean_confidence']:>11.3f}{r['frechet_classifier_features']:>10.2f}" for name, r in results.items()]
    lines.append("* Fréchet distance to the test set in the digit classifier's feature space (lower is better). "
                 "It is NOT Inception FID: comparable only within probgen, on the same data.")
    summary = {"data": ds.name, "binarized": ds.binarized, "seed": seed,
               "classifier_test_accuracy": clf.test_accuracy, "frechet_floor_val_vs_test": floor,
               "note": "Fréchet distance in the classifier's penultimate features, not Inception FID",
               "models": results}
    summary = with_device(summary, device)
    write_json(out / "eval.json", summary)
    gplots.class_histograms({"real test": {"class_histogram": real_q["class_histogram"]}, **results},
                            out / "class_histograms.png")
    lines.append(f"wrote {out / 'eval.json'}, {out / 'class_histograms.png'} and sample grids in {out}/")
    return JudgeResult(clf.test_accuracy, floor, results, summary, [out / "eval.json", out / "class_histograms.png"],
                       lines)
