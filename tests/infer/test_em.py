"""EM (probgen.infer.em.fit_em): the numbers of the loop that lived in models/gmm.py,
a non-decreasing log-likelihood, callbacks, convergence."""
from __future__ import annotations

import math

import pytest
import torch

from probgen.infer import Callback, fit_em
from probgen.models import GMM

#: 10-component Bernoulli mixture on binarized digits (seed 0), measured with the EM loop of
#: models/gmm.py before it moved here (commit 0744ee5): 27 iterations, train log-lik per example
OLD_TRAIN_LL, OLD_ITERS = -19.233482360839844, 27


def _reference_em(gmm: GMM, x: torch.Tensor, max_iter: int, tol: float, seed: int) -> list[float]:
    """EM written out by hand: E-step from the enumerated model, closed-form M-step."""
    history, prev = [], -math.inf
    with torch.no_grad():
        gmm.m_step(x, gmm.initial_responsibilities(x, init="kmeans", seed=seed))
        for _ in range(max_iter):
            joint = gmm.joint_log_prob(x)
            ll = torch.logsumexp(joint, 0)
            history.append(float(ll.mean()))
            if history[-1] - prev < tol:
                break
            prev = history[-1]
            gmm.m_step(x, torch.exp(joint - ll))
    return history


def test_em_on_digits_reaches_the_old_log_likelihood_monotonically(digits):
    gmm = GMM(10, likelihood="bernoulli").fit(digits.train, seed=0, max_iter=50, progress=False)
    lls = gmm.em_history
    assert len(lls) == OLD_ITERS and lls[-1] == pytest.approx(OLD_TRAIN_LL, abs=0.05)
    assert all(b >= a - 1e-4 for a, b in zip(lls, lls[1:])), "EM lowered the log-likelihood"
    assert gmm.converged and gmm.train_result.converged
    assert [r["epoch"] for r in gmm.train_result.history] == list(range(1, len(lls) + 1))
    assert gmm.train_result.best_val == pytest.approx(-lls[-1])
    # fit_em on a fresh model gives the hand-written loop's numbers, bit for bit
    x = digits.train.reshape(len(digits.train), -1)
    a, b = GMM(10, likelihood="bernoulli", x_dim=64), GMM(10, likelihood="bernoulli", x_dim=64)
    res = fit_em(a, x, max_iter=50, tol=1e-3, seed=0, progress=False)
    # (to rounding: fit_em normalises with one exp, the reference with logsumexp and exp)
    assert [r["log_likelihood"] for r in res.history] == pytest.approx(_reference_em(b, x, 50, 1e-3, 0), abs=1e-5)
    for k, v in a.state_dict().items():
        torch.testing.assert_close(v, b.state_dict()[k], atol=1e-3, rtol=1e-4)  # logits near the clamp


def test_em_callbacks_see_every_iteration_and_can_stop():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 2, generator=g)  # one blob for three components: EM creeps along slowly

    class Recorder(Callback):
        def __init__(self, stop_after=None):
            self.events, self.stop_after = [], stop_after

        def on_train_begin(self, trainer):
            self.events.append(("begin", trainer.algorithm))

        def on_epoch_end(self, trainer, record):
            self.events.append(("iter", record["epoch"]))
            if record["epoch"] == self.stop_after:
                trainer.stop = True

        def on_train_end(self, trainer):
            self.events.append(("end", len(trainer.result.history)))

    rec = Recorder()
    gmm = GMM(3).fit(x, tol=0.0, max_iter=5, init="random", progress=False, callbacks=[rec])
    assert rec.events == [("begin", "em"), *[("iter", i) for i in range(1, 6)], ("end", 5)]
    assert not gmm.converged  # tol 0 is never met in 5 iterations
    stopper = Recorder(stop_after=2)
    gmm = GMM(3).fit(x, tol=0.0, max_iter=5, init="random", progress=False, callbacks=[stopper])
    assert len(gmm.em_history) == 2 and gmm.train_result.stopped_early and not gmm.converged


def test_em_refuses_bad_options():
    x = torch.randn(20, 2)
    gmm = GMM(2, x_dim=2)
    with pytest.raises(ValueError, match="max_iter"):
        fit_em(gmm, x, max_iter=0, progress=False)
    with pytest.raises(ValueError, match="tol"):
        fit_em(gmm, x, tol=-1.0, progress=False)
    with pytest.raises(ValueError, match="not a probgen.infer.Callback"):
        fit_em(gmm, x, callbacks=[print], progress=False)
