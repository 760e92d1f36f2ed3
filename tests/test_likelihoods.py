"""probgen.likelihoods: pixel likelihoods, mean images, the VAE-like models' argument checks."""
from __future__ import annotations

import pytest
import torch

from probgen.likelihoods import check_likelihood, check_pixel_args, check_x_shape, mean_image, pixel_likelihood


def test_pixel_likelihood_and_mean_image():
    logits = torch.tensor([[0.0, 2.0, -2.0]])
    bern = pixel_likelihood("bernoulli", logits)
    assert bern.event_shape == (3,) and bern.batch_shape == (1,)
    assert torch.isfinite(bern.log_prob(torch.tensor([[0.5, 1.0, 0.0]]))).all()  # soft targets allowed
    assert torch.allclose(mean_image("bernoulli", logits), torch.sigmoid(logits))
    loc, scale = torch.tensor([[-0.5, 0.5, 1.5]]), torch.ones(1, 3)
    assert pixel_likelihood("normal", (loc, scale)).event_shape == (3,)
    assert mean_image("normal", (loc, scale)).tolist() == [[0.0, 0.5, 1.0]]  # clamped to [0, 1]
    assert mean_image("bernoulli", torch.zeros(4, 2, 6), (2, 3)).shape == (4, 2, 2, 3)  # [.., *x_shape]


def test_checks():
    assert check_likelihood("normal") == "normal"
    with pytest.raises(ValueError, match="likelihood must be one of"):
        check_likelihood("poisson")
    assert check_x_shape(64) == (64,) and check_x_shape(64, [8, 8]) == (8, 8)
    with pytest.raises(ValueError, match="does not hold x_dim=64"):
        check_x_shape(64, (8, 7))
    assert check_pixel_args(64, z_dim=2, hidden=[16], likelihood="bernoulli", x_shape=None) == (
        64, 2, (16,), "bernoulli", (64,))
    with pytest.raises(ValueError, match="z_dim must be a positive integer"):
        check_pixel_args(64, z_dim=0, hidden=(16,), likelihood="bernoulli")
