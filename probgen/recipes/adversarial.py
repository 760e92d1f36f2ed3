"""``probgen train gan``: the GAN family in the registry (config, build, fit).

The game's options (:class:`probgen.recipes.gan.GameConfig`) are shared with the 1-D toy;
here they gain the architecture, epochs and the per-epoch monitor of the image GAN.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .config import FitBase, RunConfig, opt, parse_int_list, seed_everything, with_device
from .gan import GameConfig
from .models import fit_model, is_lead, register_model

__all__ = ["GANConfig", "HIDDEN_DEFAULTS"]

#: default widths (MLP) / channels (dcgan, image side first) per architecture
HIDDEN_DEFAULTS = {"mlp": (128, 256), "dcgan": (64, 128)}


@dataclass
class GANConfig(GameConfig, FitBase):
    """Generative adversarial network (own adversarial trainer, not SVI; MLP or DCGAN)."""

    arch: str = opt("auto", "mlp, or dcgan (convolutional; H, W divisible by 4); auto: dcgan for such images, "
                            "else mlp", choices=("auto", "mlp", "dcgan"))
    epochs: int = opt(100, "passes over the data")
    train_size: int | None = opt(None, "train on the first N training images only (validation and test unchanged)",
                                 metavar="N")
    minutes: float | None = opt(None, "stop at the end of the first epoch that finishes after M minutes (the model "
                                      "of that epoch is kept)", metavar="M")
    resume: bool = opt(False, "continue from OUT/gan.last.pt (refused when there is none)")
    grid_every: int = opt(1, "write the fixed-noise sample grid every N epochs to OUT/gan_grids/ (0: never)")
    no_monitor: bool = opt(False, "skip the per-epoch classifier check (coverage, mode-collapse warning)")
    log_dir: str | None = opt(None, "write TensorBoard logs (D/G losses per step and per epoch, a sample grid "
                                    "per epoch, hyperparameters) to this folder; needs pip install 'probgen[tb]'",
                              metavar="DIR")
    distributed: bool = opt(False, "multi-process training, D and G under DistributedDataParallel: launch with "
                            "torchrun --nproc_per_node=N -m probgen train gan ...; --batch-size is the global "
                            "batch, split across ranks (see docs/scale.md)")

    def fit_options(self, run: RunConfig) -> dict:
        """The adversarial trainer's options: epochs, resume, logs and the game's."""
        return {**FitBase.fit_options(self, run), **self.game_options()}


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
    """:func:`~probgen.recipes.models.fit_model` with the per-epoch monitor and sample grids; the final file
    records the sample quality; then the history, curves and samples beside it."""
    notes = notes if notes is not None else []
    clf, monitor = None, None
    lead = is_lead(cfg)
    if lead and ds.train_labels is not None and not cfg.no_monitor and len(ds.shape) == 2:
        from ..metrics import sample_quality, train_classifier

        clf = train_classifier(ds, seed=run.seed)
        if not run.quiet:
            print(f"monitor: digit classifier, test accuracy {clf.test_accuracy:.3f}")
        keys = ("coverage", "max_class_fraction", "mean_confidence")

        def monitor(samples):
            q = sample_quality(clf, samples)
            return {k: q[k] for k in keys}
    callbacks = [_grids(path.parent / f"{path.stem}_grids", cfg.grid_every)] if cfg.grid_every and lead else []

    summary: dict = {}
    model = fit_model(model, cfg, ds, path, run, notes, monitor=monitor, callbacks=callbacks,
                      extra=lambda m: _quality(m, ds, run, clf, notes, summary))
    if lead:
        _write_beside(model, cfg, path, notes, summary)
    return model


def _grids(folder: Path, every: int):
    """A callback writing the fixed-code sample grid every ``every`` epochs to ``folder/epoch_NNNN.png``."""
    import torch

    from ..infer import Callback
    from .train import save_images

    class Grids(Callback):
        def on_epoch_end(self, trainer, record: dict) -> None:
            gan = trainer.model
            if record["epoch"] % every == 0:
                with torch.no_grad():
                    fixed = gan.decode(gan.fixed_z)
                if fixed.dim() == 3:  # images [n, H, W]
                    save_images(fixed.cpu(), folder / f"epoch_{record['epoch']:04d}.png", nrow=8)

    return Grids()


def _quality(model, ds, run: RunConfig, clf, notes: list, summary: dict) -> dict:
    """What the checkpoint records after the game (the trainer calls it once): mode-collapse warnings and,
    with a classifier, the quality of 1,000 samples; ``summary`` (the history file's) filled on the way."""
    result = model.train_result
    summary.update({"fit_seconds": result.seconds, "steps": result.steps, "mode_collapse_warnings": result.warnings,
                    "parzen_bandwidth": float(model.parzen_bandwidth)})
    extra = {"warnings": result.warnings}
    if clf is not None:
        from ..metrics import classes_found, frechet_distance, sample_quality
        from .gan import quality_line

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
    return extra


def _write_beside(model, cfg: GANConfig, path: Path, notes: list, summary: dict) -> None:
    """The history (with the summary), the training curves and 64 samples beside the checkpoint."""
    import torch

    from ..io import write_json
    from ..plots import gan as gplots
    from .train import save_images

    result = model.train_result
    if result.stopped_early:
        notes.append(f"stopped after {len(result.history)} epochs (--minutes {cfg.minutes:g})")
    out = path.parent
    summary = with_device(summary, model.device)
    write_json(out / f"{path.stem}_history.json", {"history": result.history, "summary": summary})
    if result.history:
        gplots.training_curves(result.history, out / f"{path.stem}_training.png", wgan=cfg.loss == "wgan-gp")
    with torch.no_grad():
        save_images(model.sample(64).cpu(), out / f"{path.stem}_samples.png", nrow=8)


register_model("gan", GANConfig, _build_gan, fit=_fit_gan, data_defaults={"binarize": False}, tour="adversarial",
               help="generative adversarial network (own adversarial loop, not SVI; MLP or DCGAN)")
