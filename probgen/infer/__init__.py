"""Inference: one trainer per algorithm, one hook system, one writer of model files.

- :func:`train` (:mod:`.trainers`): where ``Story.fit`` lands; hands the story to the trainer it declares
  (:data:`TRAINERS`, :func:`register_trainer`).
- :func:`fit_svi` (:mod:`.svi`): stochastic variational inference for any story; its options are one
  :class:`SVIConfig`. The objective and the step (:func:`make_elbo`, ``Objective``, ``SVIStep``,
  ``IWAE_ELBO``) are in :mod:`.objective`, the captured step in :mod:`.compiled`.
- :func:`fit_em` (:mod:`.em`): EM for a mixture whose E-step is the enumerated Pyro posterior.
- :func:`fit_adversarial` (:mod:`.adversarial`): the GAN game, on a data tensor or a sampler.
- :mod:`.hooks`: what a callback sees (:class:`Trainer`, :class:`TrainResult`) and the callbacks
  (:class:`Callback`, :class:`Logger`, :class:`TimeLimit`); :mod:`.tensorboard` is one logger.
- :mod:`.callbacks`: early stopping, the checkpoint/resume path (:class:`Checkpointer`), the
  dispatcher of the hooks.
- :mod:`.distributed`: multi-process SVI and GAN training under ``torchrun``.
- :func:`refit_guide` (:mod:`.refit`): train a trained story's guide alone, model frozen (a tighter proposal);
  :func:`refine_proposal`: a proposal fitted to each example being scored.
"""
from __future__ import annotations

from ..runtime import log, progress_bar, rng_state, set_rng_state
from .adversarial import LOSSES, discriminator_loss, fit_adversarial, generator_loss, gradient_penalty
from .callbacks import Checkpointer, DivergenceError, EarlyStopping, last_path
from .em import fit_em
from .hooks import Callback, Logger, TimeLimit, Trainer, TrainResult
from .objective import ELBOS, make_elbo
from .refit import model_parameters, refine_proposal, refit_guide
from .svi import SVIConfig, fit_svi
from .trainers import TRAINERS, register_trainer, train

__all__ = [
    "train", "TRAINERS", "register_trainer",
    "fit_svi", "SVIConfig", "make_elbo", "ELBOS", "fit_em", "fit_adversarial", "refit_guide", "refine_proposal",
    "model_parameters", "LOSSES", "discriminator_loss", "generator_loss", "gradient_penalty",
    "Callback", "Logger", "TimeLimit", "Trainer", "TrainResult", "Checkpointer", "EarlyStopping", "DivergenceError",
    "last_path", "log", "progress_bar", "rng_state", "set_rng_state",
]
