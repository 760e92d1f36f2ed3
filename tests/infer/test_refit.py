"""refit_guide: the guide alone trains (IWAE bound), the model stays bit for bit, the estimate tightens."""
from __future__ import annotations

import pytest
import torch

from probgen.data import load
from probgen.evaluate import log_likelihood
from probgen.infer import model_parameters, refit_guide
from probgen.models import GMM, VAE


@pytest.fixture(scope="module")
def digits():
    return load("digits", binarize=True)


def _iwae(vae, x):
    torch.manual_seed(0)
    with torch.no_grad():
        return float(log_likelihood(vae, x, num_samples=10).mean())  # small k: the proposal shows


def test_refit_trains_the_guide_alone_to_a_good_proposal(digits):
    torch.manual_seed(0)
    vae = VAE(64, z_dim=4, hidden=(32,)).fit(digits.train, epochs=4, batch_size=64, progress=False)
    trained = _iwae(vae, digits.test)
    for layer in vae.encoder.modules():  # a useless guide for the same model: the estimate drops
        if isinstance(layer, torch.nn.Linear):
            layer.reset_parameters()
    broken = _iwae(vae, digits.test)
    decoder = {k: v.clone() for k, v in vae.decoder.state_dict().items()}
    info = refit_guide(vae, digits.train, val=digits.val, num_particles=5, epochs=4, batch_size=64, lr=1e-3,
                       progress=False)
    assert all(torch.equal(v, decoder[k]) for k, v in vae.decoder.state_dict().items())  # p(x) unchanged
    assert all(p.requires_grad for p in vae.parameters())  # unfrozen afterwards
    assert info["k"] == 5 and info["epochs"] == 4 and info["frozen"] == 4 and info["val_bound"] > 0
    after = _iwae(vae, digits.test)  # a proposal as good as the jointly trained one, from scratch
    assert broken < trained - 1 and after > broken + 1 and after > trained - 0.5, (trained, broken, after)


def test_model_parameters_are_read_from_the_program(digits):
    vae = VAE(64, z_dim=3, hidden=(8,))
    model_ids = {id(p) for p in model_parameters(vae, digits.train)}
    assert model_ids == {id(p) for p in vae.decoder.parameters()}


def test_refit_refuses_bad_counts_and_guides_without_parameters(digits):
    vae = VAE(64, z_dim=3, hidden=(8,))
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        refit_guide(vae, digits.train, epochs=0)
    with pytest.raises(ValueError, match="num_particles must be a positive integer"):
        refit_guide(vae, digits.train, num_particles=0)
    with pytest.raises(ValueError, match="no parameters of its own"):
        refit_guide(GMM(3, x_dim=64, likelihood="bernoulli"), digits.train, epochs=1)
