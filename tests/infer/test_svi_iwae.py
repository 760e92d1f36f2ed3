"""The IWAE objective (issue 17): ``elbo="iwae"`` is Pyro's ``RenyiELBO(alpha=0)`` with a
``differentiable_loss``; value and gradient equal Pyro's own, k=1 is the ELBO, and
``probgen train vae --elbo iwae --num-particles K`` trains with it."""
from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch

from probgen.cli import main
from probgen.infer.svi import IWAE_ELBO, make_elbo
from probgen.models import VAE


def _grads(model):
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    return grads


@pytest.mark.parametrize("k", [1, 5])
def test_iwae_loss_and_gradient_equal_pyros_renyi(digits, k):
    x = digits.train[:32].reshape(32, -1)
    vae = VAE(64, z_dim=4, hidden=(16,))
    elbo = make_elbo("iwae", num_particles=k)
    assert isinstance(elbo, IWAE_ELBO) and elbo.alpha == 0
    pyro.set_rng_seed(1)
    loss = elbo.differentiable_loss(vae.model, vae.guide, x)
    loss.backward()
    ours = _grads(vae)
    pyro.set_rng_seed(1)
    renyi = pyro.infer.RenyiELBO(alpha=0, num_particles=k, max_plate_nesting=1, vectorize_particles=k > 1)
    value = renyi.loss_and_grads(vae.model, vae.guide, x)
    assert float(loss.detach()) == pytest.approx(value, rel=1e-6)
    for a, b in zip(ours, _grads(vae)):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)
    if k == 1:  # one particle: the ordinary (Monte Carlo) ELBO
        pyro.set_rng_seed(1)
        assert float(loss.detach()) == pytest.approx(pyro.infer.Trace_ELBO().loss(vae.model, vae.guide, x), rel=1e-5)


def test_iwae_bound_is_tighter_with_more_particles(digits):
    x = digits.train[:256].reshape(256, -1)
    vae = VAE(64, z_dim=4, hidden=(16,))
    with torch.no_grad():
        pyro.set_rng_seed(0)
        k1 = float(make_elbo("iwae", num_particles=1).differentiable_loss(vae.model, vae.guide, x))
        pyro.set_rng_seed(0)
        k50 = float(make_elbo("iwae", num_particles=50).differentiable_loss(vae.model, vae.guide, x))
    assert k50 < k1  # −log p(x) <= −IWAE_50 <= −ELBO, on average; the gap is large for an untrained guide


def test_fit_with_iwae_improves_the_bound(digits):
    pyro.set_rng_seed(0)
    vae = VAE(64, z_dim=4, hidden=(32,), elbo="iwae")
    vae.fit(digits.train, val=digits.val, epochs=6, num_particles=5, progress=False, patience=None)
    hist = vae.train_result.history
    assert vae.checked.elbo == "iwae"
    assert hist[-1]["val_loss"] < hist[0]["val_loss"] and hist[-1]["train_loss"] < hist[0]["train_loss"]


def test_iwae_refuses_a_guide_without_rsample():
    def model(x):
        with pyro.plate("data", len(x)):
            c = pyro.sample("c", dist.Bernoulli(0.5 * torch.ones(len(x))))
            pyro.sample("x", dist.Normal(c, 1.0), obs=x)

    def guide(x):
        with pyro.plate("data", len(x)):
            pyro.sample("c", dist.Bernoulli(0.3 * torch.ones(len(x))))

    with pytest.raises(ValueError, match="guide site 'c' is not reparameterised"):
        make_elbo("iwae", num_particles=3).differentiable_loss(model, guide, torch.zeros(4))


def test_cli_trains_a_vae_with_the_iwae_bound(tmp_path, capsys):
    assert main(["train", "vae", "--elbo", "iwae", "--num-particles", "4", "--epochs", "2", "--hidden", "16",
                 "--z-dim", "4", "--quiet", "--out", str(tmp_path)]) == 0
    assert "trained vae" in capsys.readouterr().out
    from probgen import load
    from probgen.io import last_path, load_checkpoint

    assert load(tmp_path / "vae.pt").elbo == "iwae"
    trainer = load_checkpoint(last_path(tmp_path / "vae.pt"))["trainer"]
    assert len(trainer["history"]) == 2
    assert main(["train", "vae", "--num-particles", "0", "--out", str(tmp_path / "bad")]) == 2
    assert "--num-particles must be >= 1" in capsys.readouterr().err
