"""Posterior diagnostics and model comparison with ArviZ.

Four questions about a trained story, each answered by one function:

- *What did the guide infer?* :func:`to_inference_data` (:mod:`.guide`): draws of the
  guide's latent sites, the pointwise log-likelihood and the importance log-weights as
  ArviZ ``InferenceData``.
- *Is the guide good enough as an importance proposal?* :func:`guide_quality`
  (:mod:`.guide`): PSIS k̂ per data point, ESS, IWAE gap.
- *How far is the guide from the true posterior?* :func:`nuts_posterior` (:mod:`.nuts`).
- *Which model is better, with uncertainty?* :func:`compare_pointwise` (:mod:`.compare`).
- *Is the encoder calibrated?* :func:`sbc` (:mod:`.calibration`): simulation-based calibration of an
  amortised guide, per latent dimension, with a one-line verdict.
- *Has the code collapsed?* :func:`collapse` (:mod:`.collapse`): active units, KL per dimension,
  the mutual information between x and z under q.
- *Redo PSIS from the file:* :func:`psis_posterior_mean` (:mod:`.reweight`) reads ``diagnostics.nc``
  (its ``lp`` / ``lp_approx`` per draw) and nothing else.

Plus the GMM's exact posterior over the assignment (:func:`gmm_responsibilities`) and a
fully Bayesian GMM fitted by NUTS that shows label switching (:func:`bayesian_gmm_nuts`).
ArviZ is imported only in :mod:`._arviz`, inside functions; figures are in
:mod:`probgen.plots.diagnostics`.
"""
from __future__ import annotations

from ._arviz import _az_groups  # noqa: F401 - tests and the CLI read group names through it
from .calibration import ALPHA, Calibration, sbc
from .collapse import ACTIVE, Collapse, collapse
from .compare import compare_pointwise
from .guide import (KHAT_BINS, GuideQuality, gmm_responsibilities, guide_quality, khat_counts,
                    load_inference_data, pareto_khat, quality_from_weights, save_inference_data, to_inference_data)
from .latents import NotSimulable
from .nuts import BayesGMMResult, NutsResult, bayesian_gmm_nuts, nuts_posterior
from .reweight import PSISMeans, psis_posterior_mean

__all__ = [
    "to_inference_data",
    "save_inference_data",
    "load_inference_data",
    "guide_quality",
    "quality_from_weights",
    "GuideQuality",
    "pareto_khat",
    "khat_counts",
    "nuts_posterior",
    "NutsResult",
    "compare_pointwise",
    "gmm_responsibilities",
    "bayesian_gmm_nuts",
    "BayesGMMResult",
    "KHAT_BINS",
    "sbc",
    "Calibration",
    "ALPHA",
    "NotSimulable",
    "collapse",
    "Collapse",
    "ACTIVE",
    "psis_posterior_mean",
    "PSISMeans",
]
