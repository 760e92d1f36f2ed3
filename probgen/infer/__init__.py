"""Inference: one trainer per algorithm, all sharing :mod:`probgen.infer.callbacks`.

- :func:`train` (:mod:`.trainers`): where ``Story.fit`` lands; hands the story to the trainer it declares.

- :func:`fit_svi` (:mod:`.svi`): stochastic variational inference for any story.
- :func:`fit_em` (:mod:`.em`): EM for a mixture whose E-step is the enumerated Pyro posterior.
- :func:`fit_adversarial` (:mod:`.adversarial`): the GAN game, on a data tensor or a sampler.
- :mod:`.callbacks`: progress bar, log line, early stopping, checkpoint/resume, logging hooks.
- :mod:`.distributed`: multi-process SVI under ``torchrun``.
- :func:`refit_guide` (:mod:`.refit`): train a trained story's guide alone, model frozen (a tighter proposal);
  :func:`refine_proposal`: a proposal fitted to each example being scored.
"""
from __future__ import annotations

from .adversarial import LOSSES, discriminator_loss, fit_adversarial, generator_loss, gradient_penalty
from .callbacks import (Callback, Checkpointer, DivergenceError, EarlyStopping, Logger, Trainer, TrainResult, last_path,
                        log, progress_bar, rng_state, set_rng_state)
from .em import fit_em
from .refit import model_parameters, refine_proposal, refit_guide
from .svi import ELBOS, fit_svi, make_elbo
from .trainers import TRAINERS, register_trainer, train

__all__ = [
    "train", "TRAINERS", "register_trainer",
    "fit_svi", "make_elbo", "ELBOS", "fit_em", "fit_adversarial", "refit_guide", "refine_proposal", "model_parameters",
    "LOSSES", "discriminator_loss", "generator_loss", "gradient_penalty",
    "Callback", "Logger", "Trainer", "TrainResult", "Checkpointer", "EarlyStopping", "DivergenceError",
    "last_path", "log", "progress_bar", "rng_state", "set_rng_state",
]
