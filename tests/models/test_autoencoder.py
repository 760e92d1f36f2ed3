"""AutoEncoder: no latent site, maximum likelihood by SVI, code priors, save/load."""
from __future__ import annotations

import pyro.poutine as poutine
import pytest
import torch

from pyro.poutine.util import site_is_subsample

from probgen.models import VAE, AutoEncoder, load


def _latent_sites(trace) -> list[str]:
    return [name for name, s in trace.nodes.items()
            if s["type"] == "sample" and not s["is_observed"] and not site_is_subsample(s)]


def test_same_layers_as_vae_and_no_latent_site():
    ae = AutoEncoder(64, z_dim=5, hidden=(32,), x_shape=(8, 8))
    vae = VAE(64, z_dim=5, hidden=(32,), x_shape=(8, 8))
    assert [p.shape for p in ae.decoder.parameters()] == [p.shape for p in vae.decoder.parameters()]
    assert ae.encoder[0].weight.shape == (32, 64)  # x → hidden, as the VAE's encoder
    x = torch.bernoulli(torch.full((4, 8, 8), 0.5))
    tr = poutine.trace(ae.model).get_trace(x)
    assert _latent_sites(tr) == [] and tr.observation_nodes == ["x"]
    assert _latent_sites(poutine.trace(ae.guide).get_trace(x)) == []
    assert ae.encode(x).shape == (4, 5)
    assert ae.decode(torch.zeros(3, 5)).shape == (3, 8, 8)


def test_fit_code_prior_sample_save_load(tmp_path, digits):
    ae = AutoEncoder(digits.x_dim, z_dim=3, hidden=(32,), x_shape=digits.shape)
    ae.fit(digits.train[:300], val=digits.val[:100], epochs=4, batch_size=64, lr=3e-3, progress=False)
    hist = ae.train_result.history
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    codes = ae.encode(digits.train[:300])
    torch.testing.assert_close(ae.code_mean, codes.mean(0), atol=1e-4, rtol=1e-4)
    for prior in ("normal", "fitted"):
        s = ae.sample(6, code_prior=prior)
        assert s.shape == (6, 8, 8) and float(s.min()) >= 0 and float(s.max()) <= 1
    assert ae.sample(2, mean=True, z=torch.zeros(2, 3)).shape == (2, 8, 8)
    with pytest.raises(ValueError, match="code_prior"):
        ae.sample(2, code_prior="uniform")
    lp = ae.log_prob(digits.test[:5], num_samples=16)
    assert lp.shape == (5,) and torch.isfinite(lp).all() and (lp < 0).all()
    path = ae.save(tmp_path / "ae.pt")
    back = load(path)
    assert isinstance(back, AutoEncoder)
    torch.testing.assert_close(back.code_scale_tril, ae.code_scale_tril)
    with pytest.raises(ValueError, match="no generative story"):
        ae.model(None)


def test_the_final_checkpoint_holds_the_fitted_code_prior(tmp_path, digits):
    """end_fit fits the code Gaussian before the trainer writes the final file: no second save."""
    ae = AutoEncoder(digits.x_dim, z_dim=2, hidden=(16,), x_shape=digits.shape)
    ae.fit(digits.train[:200], epochs=1, batch_size=64, progress=False, checkpoint=tmp_path / "ae.pt")
    assert float(ae.code_mean.abs().sum()) > 0  # no longer N(0, I)'s zeros
    back = load(tmp_path / "ae.pt")
    torch.testing.assert_close(back.code_mean, ae.code_mean)
    torch.testing.assert_close(back.code_scale_tril, ae.code_scale_tril)
    assert ae.traits.estimator == "proposal" and ae.traits.proposal_name == "IS, fitted code prior"
