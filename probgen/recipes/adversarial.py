"""``probgen train gan``: the GAN family in the registry (config, build, fit).

The game's options (:class:`probgen.recipes.gan.GameConfig`) are shared with the 1-D toy;
here they gain the architecture, epochs and the per-epoch monitor of the image GAN.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from .config import RunConfig, opt, parse_int_list, resolve_device, seed_everything
from .gan import GameConfig
from .models import fit_limits, register_model, save_model

__all__ = ["GANConfig", "HIDDEN_DEFAULTS"]

#: default widths (MLP) / channels (dcgan, image side first) per architecture
HIDDEN_DEFAULTS = {"mlp": (128, 256), "dcgan": (64, 128)}


@dataclass
class GANConfig(GameConfig):
    """Generative adversarial network (own adversarial trainer, not SVI; MLP or DCGAN)."""

    arch: str = opt("auto", "mlp, or dcgan (convolutional; H, W divisible by 4); auto: dcgan for such images, "
                            "else mlp", choices=("auto", "mlp", "dcgan"))
    epochs: int = opt(100, "passes over the data")
    train_size: int | None = opt(None, "train on the first N training images only (validation and test unchanged)",
                                 metavar="N")
    minutes: float | None = opt(None, "stop at the end of the first epoch that finishes after M minutes (the model "
                                      "of that epoch is kept)", metavar="M")
    resume: bool = opt(False, "continue from OUT/gan.last.pt if present")
    grid_every: int = opt(1, "write the fixed-noise sample grid every N epochs to OUT/gan_grids/ (0: never)")
    no_monitor: bool = opt(False, "skip the per-epoch classifier check (coverage, mode-collapse warning)")
    log_dir: str | None = opt(None, "write TensorBoard logs (D/G losses per step and per epoch, a sample grid "
                                    "per epoch, hyperparameters) to this folder; needs pip install 'probgen[tb]'",
                              metavar="DIR")
    distributed: bool = opt(False, "multi-process training, D and G under DistributedDataParallel: launch with "
                            "torchrun --nproc_per_node=N -m probgen train gan ...; --batch-size is the global "
                            "batch, split across ranks (see docs/scale.md)")


def _build_gan(cfg: GANConfig, ds):
    from ..models import GAN

    cfg.check()
    if cfg.epochs < 0:
        raise ValueError(f"--epochs must be >= 0, got {cfg.epochs}")
    arch = cfg.arch
    if arch == "auto":
        arch = "dcgan" if len(ds.shape) == 2 and ds.shape[0] % 4 == 0 and ds.shape[1] % 4 == 0 else "mlp"
    hidden = parse_int_list(cfg.hidden if cfg.hidden else HIDDEN_DEFAULTS[arch], "--hidden")
    return GAN(arch, x_shape=list(ds.shape), z_dim=cfg.z_dim, hidden=list(hidden), loss=cfg.loss,
               dropout=cfg.dropout, spectral_norm=cfg.spectral_norm, ema=cfg.ema)


def _fit_gan(model, cfg: GANConfig, ds, path: Path, run: RunConfig, notes=None):
    from .train import save_images

    dist = None
    if cfg.distributed:  # every rank trains its shard; rank 0 alone monitors and writes
        from ..infer.distributed import Distributed

        dist = Distributed.from_env(run.device)
    model = model.to(dist.device if dist is not None else resolve_device(run.device))
    from ..infer.callbacks import set_threads

    set_threads(cfg.threads)  # as every trainer: one thread on a 2-core machine; --threads overrides
    notes = notes if notes is not None else []
    x, _, limits = fit_limits(cfg, ds, None, notes)  # --train-size, --minutes (a TimeLimit callback)
    clf, monitor = None, None
    lead = dist is None or dist.is_main
    if lead and ds.train_labels is not None and not cfg.no_monitor and len(ds.shape) == 2:
        from ..metrics import sample_quality, train_classifier

        clf = train_classifier(ds, seed=run.seed)
        if not run.quiet:
            print(f"monitor: digit classifier, test accuracy {clf.test_accuracy:.3f}")
        keys = ("coverage", "max_class_fraction", "mean_confidence")

        def monitor(samples):
            q = sample_quality(clf, samples)
            return {k: q[k] for k in keys}
    grids = path.parent / f"{path.stem}_grids"

    def on_epoch(epoch, record, fixed):
        if cfg.grid_every and (epoch + 1) % cfg.grid_every == 0 and fixed.dim() == 3:
            save_images(fixed.cpu(), grids / f"epoch_{epoch + 1:04d}.png", nrow=8)

    t0 = time.perf_counter()
    model.fit(x, epochs=cfg.epochs, progress=not run.quiet, checkpoint=path, resume=cfg.resume,
              monitor=monitor, on_epoch=on_epoch, callbacks=limits, log_dir=cfg.log_dir, distributed=dist,
              **cfg.fit_options())
    if dist is not None:
        try:
            return _finish(model, cfg, ds, path, run, notes, clf, t0) if lead else model
        finally:
            dist.barrier()  # no rank reports before rank 0's files are complete
    return _finish(model, cfg, ds, path, run, notes, clf, t0)


def _finish(model, cfg: GANConfig, ds, path: Path, run: RunConfig, notes: list, clf, t0: float):
    """After the game: Parzen bandwidth, sample quality, the checkpoint, history, curves and samples."""
    import torch

    from ..io import write_json
    from ..plots import gan as gplots
    from .gan import quality_line
    from .train import save_images

    if model.train_result.stopped_early:
        notes.append(f"stopped after {len(model.train_result.history)} epochs (--minutes {cfg.minutes:g})")
    fit_seconds = time.perf_counter() - t0
    model.fit_parzen(ds.val, binary=ds.binarized)  # so that log_prob / compare work from the checkpoint
    history = model.train_result.history
    extra = {"fit_seconds": fit_seconds, "history": history, "warnings": model.train_result.warnings}
    summary = {"fit_seconds": fit_seconds, "steps": model.train_result.steps,
               "mode_collapse_warnings": model.train_result.warnings,
               "parzen_bandwidth": float(model.parzen_bandwidth)}
    if clf is not None:
        from ..metrics import classes_found, frechet_distance, sample_quality

        seed_everything(run.seed)
        samples = model.sample(1000)
        q = sample_quality(clf, samples)
        fd = frechet_distance(clf, ds.test, samples)
        summary.update({"classifier_test_accuracy": clf.test_accuracy, "classes_found": classes_found(q),
                        "coverage": q["coverage"], "max_class_fraction": q["max_class_fraction"],
                        "mean_confidence": q["mean_confidence"], "class_histogram": q["class_histogram"],
                        "frechet_classifier_features": fd})
        extra["quality"] = {k: v for k, v in summary.items() if k != "mode_collapse_warnings"}
        notes.append(quality_line("gan", q, fd))
    save_model(model, path, ds, extra=extra)
    out = path.parent
    write_json(out / f"{path.stem}_history.json", {"history": history, "summary": summary})
    if history:
        gplots.training_curves(history, out / f"{path.stem}_training.png", wgan=cfg.loss == "wgan-gp")
    with torch.no_grad():
        save_images(model.sample(64).cpu(), out / f"{path.stem}_samples.png", nrow=8)
    model.checkpoint_extra = extra
    return model


register_model("gan", GANConfig, _build_gan, _fit_gan, data_defaults={"binarize": False},
               help="generative adversarial network (own adversarial loop, not SVI; MLP or DCGAN)")
