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
#: float32 carries 2**-24 ≈ 6e-8 relative: the two loops below differ only in how they normalise
#: (one exp against logsumexp then exp), a few ulps per responsibility, and BLAS kernels on other CPUs
#: sum in other orders. Through 20 M-steps that moves a Bernoulli mean p by a few tens of ulps of 1
#: (measured 3e-7 here), so probabilities are compared to 2e-6; a logit log p − log(1 − p) amplifies an
#: error of p by 1 / (p (1 − p)) — 2e-3 at p = 0.99994 here, the failure seen on an AMD EPYC — so logits
#: are not compared bit by bit. A mean log-likelihood (~19 nats, 1,297 × 64 terms) to 5e-5 (measured 4e-6).
P_ATOL, LL_ATOL = 2e-6, 5e-5


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
    # the 26th improvement is 1.005e-3, 5e-6 above tol: rounding on another CPU may stop EM there
    assert len(lls) in (OLD_ITERS - 1, OLD_ITERS) and lls[-1] == pytest.approx(OLD_TRAIN_LL, abs=0.05)
    assert all(b >= a - 1e-4 for a, b in zip(lls, lls[1:])), "EM lowered the log-likelihood"
    assert gmm.converged and gmm.train_result.converged
    assert [r["epoch"] for r in gmm.train_result.history] == list(range(1, len(lls) + 1))
    assert gmm.train_result.best_val == pytest.approx(-lls[-1])
    # fit_em on a fresh model gives the hand-written loop's numbers, to rounding; 20 iterations, where
    # every improvement is >= 1.4e-3, so that both loops stop at max_iter on any CPU, not at tol
    x = digits.train.reshape(len(digits.train), -1)
    a, b = GMM(10, likelihood="bernoulli", x_dim=64), GMM(10, likelihood="bernoulli", x_dim=64)
    res = fit_em(a, x, max_iter=20, tol=1e-3, seed=0, progress=False)
    ref = _reference_em(b, x, 20, 1e-3, 0)
    assert len(res.history) == len(ref) == 20 and not res.converged
    assert [r["log_likelihood"] for r in res.history] == pytest.approx(ref, abs=LL_ATOL)
    torch.testing.assert_close(torch.sigmoid(a.x_logits), torch.sigmoid(b.x_logits), atol=P_ATOL, rtol=0)
    torch.testing.assert_close(a.weights, b.weights, atol=P_ATOL, rtol=0)
    xt = digits.test.reshape(len(digits.test), -1)
    assert float(a.log_prob(xt).mean()) == pytest.approx(float(b.log_prob(xt).mean()), abs=LL_ATOL)


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


def _em_from(gmm: GMM, x: torch.Tensor, resp: torch.Tensor, max_iter: int, tol: float) -> float:
    """The hand-written loop of ``_reference_em`` from given responsibilities; the last mean log-likelihood."""
    prev = -math.inf
    with torch.no_grad():
        gmm.m_step(x, resp)
        for _ in range(max_iter):
            joint = gmm.joint_log_prob(x)
            ll = float(torch.logsumexp(joint, 0).mean())
            if ll - prev < tol:
                break
            prev = ll
            gmm.m_step(x, torch.softmax(joint, 0))
    return ll


def test_batched_starts_each_stop_at_their_tolerance_and_the_best_is_kept():
    """n_init=B: each start runs the one-start loop from its own responsibilities and stops at its own
    tolerance (held there while the others go on); the best start's parameters are the ones kept."""
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(80, 2, generator=g) + 4, torch.randn(80, 2, generator=g)]).double()
    gmm = GMM(3, covariance="full", x_dim=2)
    res = fit_em(gmm, x, init="random", seed=1, n_init=4, max_iter=200, tol=1e-4, progress=False)
    starts = GMM(3, covariance="full", x_dim=2).initial_responsibilities(x, init="random", seed=1, n_init=4)
    finals, models = [], []
    for b in range(4):
        models.append(GMM(3, covariance="full", x_dim=2))
        finals.append(_em_from(models[-1], x, starts[:, b], 200, 1e-4))
    best = finals.index(max(finals))
    assert max(finals) - min(finals) > 0.1, "the starts should end apart for this test to mean much"
    assert [r["starts_running"] for r in res.history][-1] == 0 and res.history[0]["starts_running"] == 4
    assert res.converged and -res.best_val == pytest.approx(finals[best], abs=1e-9)
    assert [r["log_likelihood"] for r in res.history] == sorted(r["log_likelihood"] for r in res.history)
    for name, value in models[best].state_dict().items():
        torch.testing.assert_close(gmm.state_dict()[name], value)


def test_n_init_must_be_a_positive_count():
    with pytest.raises(ValueError, match="n_init"):
        GMM(2).fit(torch.randn(20, 2), n_init=0, progress=False)
