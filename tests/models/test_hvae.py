"""The two-stochastic-layer VAE (issue 17): the story checks, trains (ELBO and IWAE bound),
is scored by the one IWAE estimator over both latent sites, saves and loads, and
``probgen train hvae`` trains it."""
from __future__ import annotations

import math

import pyro
import pyro.poutine as poutine
import pytest
import torch

import probgen
from probgen.cli import main
from probgen.evaluate import log_likelihood, score
from probgen.models import HVAE

SMALL = dict(z1_dim=6, z2_dim=3, hidden1=(24,), hidden2=(12,), x_shape=(8, 8))


def test_story_has_both_sites_in_model_and_guide(digits):
    m = HVAE(64, **SMALL)
    found = m.check(digits.train[:8])
    assert set(found.latent) == {"z1", "z2"} and found.observed == ["x"] and found.elbo == "trace"
    tr = poutine.trace(m.guide).get_trace(digits.train[:5].reshape(5, -1))
    assert tr.nodes["z1"]["value"].shape == (5, 6) and tr.nodes["z2"]["value"].shape == (5, 3)


def test_estimator_sums_both_latent_sites_in_each_weight(digits):
    pyro.set_rng_seed(0)
    m = HVAE(64, **SMALL)
    m.fit(digits.train, val=digits.val, epochs=8, progress=False, patience=None)
    x = digits.test[:20]
    pyro.set_rng_seed(1)
    ours = log_likelihood(m, x, num_samples=400)
    xs = x.reshape(20, -1)
    lws = []
    with torch.no_grad():  # by hand: log p(x, z1, z2) − log q(z1, z2 | x), K = 400
        for _ in range(400):
            g = poutine.trace(m.guide).get_trace(xs)
            t = poutine.trace(poutine.replay(m.model, trace=g)).get_trace(xs)
            lp = sum(s["fn"].log_prob(s["value"]) for s in t.nodes.values() if s["type"] == "sample")
            lq = sum(s["fn"].log_prob(s["value"]) for s in g.nodes.values() if s["type"] == "sample")
            lws.append(lp - lq)
    by_hand = torch.logsumexp(torch.stack(lws), 0) - math.log(400)
    assert float(ours.mean()) == pytest.approx(float(by_hand.mean()), abs=0.15)
    s = score(m, x, num_samples=50)
    assert s.estimator == "IWAE" and s.k == 50 and s.khat_share is not None
    elbo = -m.train_result.history[-1]["val_loss"]
    assert float(ours.mean()) > elbo - 3  # log p(x) ≈ IWAE ≥ ELBO, up to noise on different images


def test_fits_with_the_iwae_bound_and_round_trips(digits, tmp_path):
    pyro.set_rng_seed(0)
    m = HVAE(64, elbo="iwae", **SMALL)
    m.fit(digits.train, val=digits.val, epochs=5, num_particles=4, progress=False, patience=None)
    hist = m.train_result.history
    assert m.checked.elbo == "iwae" and hist[-1]["val_loss"] < hist[0]["val_loss"]
    assert m.sample(4, mean=True).shape == (4, 8, 8)
    draws = m.sample(4)
    assert draws.shape == (4, 8, 8) and set(draws.unique().tolist()) <= {0.0, 1.0}
    m.save(tmp_path / "h.pt")
    back = probgen.load(tmp_path / "h.pt")
    assert isinstance(back, HVAE) and back.z2_dim == 3
    x = digits.test[:10]
    torch.manual_seed(0)
    a = back.log_prob(x, num_samples=20)
    torch.manual_seed(0)
    assert torch.allclose(a, m.log_prob(x, num_samples=20))


@pytest.mark.parametrize("kwargs, message", [
    (dict(elbo="meanfield"), "not the ELBO"),
    (dict(z2_dim=0), "z2_dim must be a positive integer"),
    (dict(hidden2=(0,)), "hidden"),
    (dict(elbo="magic"), "unknown elbo"),
])
def test_bad_arguments_one_line(kwargs, message):
    with pytest.raises(ValueError, match=message):
        HVAE(64, **kwargs)


def test_cli_train_hvae(tmp_path, capsys):
    assert main(["train", "hvae", "--epochs", "2", "--z1-dim", "6", "--z2-dim", "3", "--hidden1", "16",
                 "--hidden2", "8", "--quiet", "--out", str(tmp_path)]) == 0
    assert "trained hvae" in capsys.readouterr().out
    assert isinstance(probgen.load(tmp_path / "hvae.pt"), HVAE)
    assert main(["train", "hvae", "--elbo", "iwae", "--num-particles", "3", "--epochs", "1", "--z1-dim", "4",
                 "--z2-dim", "2", "--hidden1", "8", "--hidden2", "4", "--quiet", "--out", str(tmp_path / "iw")]) == 0
    assert probgen.load(tmp_path / "iw" / "hvae.pt").elbo == "iwae"
