"""MixtureVAE: the GMM and the VAE in one story (c enumerated, TraceEnum_ELBO)."""
from __future__ import annotations

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import pytest
import torch

from probgen.evaluate import log_weights
from probgen.models import MixtureVAE
from probgen.models.mixture_vae import matched_accuracy


@pytest.fixture(scope="module")
def trained():
    from probgen.data import load

    pyro.set_rng_seed(0)
    ds = load("digits", binarize=True, seed=0)
    model = MixtureVAE(ds.x_dim, n_clusters=4, z_dim=3, hidden=(32,), x_shape=ds.shape)
    model.fit(ds.train[:512], val=ds.val[:128], epochs=3, lr=3e-3, progress=False)
    return model, ds


def test_trains_with_traceenum_automatically(trained):
    model, _ = trained
    assert model.checked.elbo == "enum" and model.checked.enumerated == ["c"]
    losses = [r["train_loss"] for r in model.train_result.history]
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]


def test_importance_weights_sum_out_the_cluster_exactly(trained):
    """probgen.evaluate's IWAE weight is log p(x|z) + log Σ_c π_c N(z; μ_c, σ_c) − log q(z|x)."""
    model, ds = trained
    x = ds.test[:5].reshape(5, -1)
    pyro.set_rng_seed(1)
    lw = log_weights(model, x, 3)  # 3 × 5
    pyro.set_rng_seed(1)
    with torch.no_grad(), pyro.plate("iwae_particles", 3, dim=-2):
        z = poutine.trace(model.guide).get_trace(x).nodes["z"]["value"]  # 3 × 5 × z_dim
    with torch.no_grad():
        loc, scale = model.encoder(x)
        prior = torch.logsumexp(torch.log_softmax(model.logits, -1) + dist.Normal(model.locs, model.log_scales.exp())
                                .to_event(1).log_prob(z.unsqueeze(-2)), -1)
        manual = (model._likelihood(z).log_prob(x) + prior - dist.Normal(loc, scale).to_event(1).log_prob(z))
    assert torch.allclose(lw, manual, atol=1e-4)
    assert torch.isfinite(model.log_prob(ds.test[:10], num_samples=20)).all()


def test_clusters_and_per_cluster_samples(trained):
    model, ds = trained
    c = model.cluster(ds.test)
    assert c.shape == (len(ds.test),) and c.dtype == torch.long and 0 <= int(c.min()) and int(c.max()) < 4
    probs = model.cluster_probs(ds.test[:7])
    assert torch.allclose(probs.sum(-1), torch.ones(7), atol=1e-5)
    grid = model.sample_clusters(3)
    assert grid.shape == (4, 3, 8, 8) and 0 <= float(grid.min()) and float(grid.max()) <= 1
    x, k = model.sample(5, cluster=2, return_clusters=True)
    assert x.shape == (5, 8, 8) and (k == 2).all()
    assert model.sample(4, label=1).shape == (4, 8, 8)
    with pytest.raises(ValueError, match="cluster must be in 0..3"):
        model.sample(2, cluster=4)


def test_warm_start_and_checkpoint_roundtrip(trained, tmp_path):
    import probgen

    model, ds = trained
    model.init_clusters(ds.train[:200])
    model.save(tmp_path / "m.pt")
    again = probgen.load(tmp_path / "m.pt")
    assert isinstance(again, MixtureVAE) and (again.n_clusters, again.z_dim) == (4, 3)
    assert torch.equal(again.cluster(ds.test), model.cluster(ds.test))


def test_matched_accuracy_and_argument_errors():
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    assert matched_accuracy(torch.tensor([2, 2, 0, 0, 1, 1]), labels) == 1.0
    assert matched_accuracy(torch.tensor([0, 0, 0, 0, 0, 0]), labels) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="n_clusters must be a positive integer"):
        MixtureVAE(64, n_clusters=0)
    with pytest.raises(ValueError, match="each example must have 64 values"):
        MixtureVAE(64).fit(torch.zeros(4, 3), epochs=1, progress=False)
