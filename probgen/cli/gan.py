"""GAN commands: ``probgen gan-toy``, ``probgen walk``, ``probgen gan-eval`` (the recipes are in
:mod:`probgen.recipes.gan`; ``probgen train gan`` comes from the registry, :mod:`probgen.recipes.adversarial`,
and ``probgen compare`` scores a GAN by Parzen windows through :func:`probgen.evaluate.score`).
"""
from __future__ import annotations

from .common import add_data_args, add_recipe, add_run_args

__all__ = ["register"]


def register(sub) -> None:
    from ..recipes.gan import GanToyConfig, JudgeConfig, WalkConfig, gan_toy, judge, walk

    t = add_recipe(sub, "gan-toy", GanToyConfig, gan_toy,
                   help="the 1-D GAN toy: data density, generator density and D(x) over training",
                   description="Train a small GAN on 1-D data and draw the lecture's picture: data density, "
                               "the generator's histogram/KDE and the discriminator curve at several steps. "
                               "Writes toy.png, toy.json (1-D Wasserstein distance per step), toy.gif.")
    add_run_args(t, out=GanToyConfig().run.out)

    add_recipe(sub, "walk", WalkConfig, walk,
               help="move through code space between random codes (linear and spherical)",
               description="Draw n random codes z ~ N(0, I), move from each to the next in --steps steps "
                           "along a straight line and along a great circle, and decode every step. "
                           "Works for any checkpoint with decode(z) and z_dim (GAN, VAE).",
               positional=[("checkpoint", "a GAN or VAE .pt file", None)])

    cfg = JudgeConfig()
    e = add_recipe(sub, "gan-eval", JudgeConfig, judge,
                   help="judge samples with a digit classifier: coverage, confidence, Fréchet distance",
                   description="Train a classifier on the real training set (its test accuracy is printed), "
                               "then, for each checkpoint (GAN, VAE, CVAE, PixelCNN, ...): class histogram of "
                               "its samples, fraction of classes covered, mean confidence, and the Fréchet "
                               "distance to the test set in the classifier's feature space (NOT Inception FID).",
                   positional=[("checkpoints", ".pt files written by probgen", "+")])
    add_data_args(e, binarize_default=cfg.data.binarize)
    add_run_args(e, out=cfg.run.out)
