"""Encoder/decoder blocks of probgen.nn.mlp: the VAE pair builder, conv shapes, and a conv VAE story trains."""
from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch

from probgen.nn import ConvBernoulliDecoder, ConvGaussianEncoder, encoder_decoder
from probgen.story import Story


def test_encoder_decoder_pairs():
    enc, dec = encoder_decoder(6, 2, (8, 4), likelihood="bernoulli")
    loc, scale = enc(torch.rand(5, 6))
    assert loc.shape == scale.shape == (5, 2) and dec(loc).shape == (5, 6)
    assert [m.out_features for m in dec.net if isinstance(m, torch.nn.Linear)] == [4, 8, 6]  # mirrored widths
    enc, dec = encoder_decoder(6, 2, (8,), likelihood="normal", condition_dim=3, gaussian=False)
    code = enc(torch.rand(5, 9))  # [x, one-hot(y)]
    assert code.shape == (5, 2) and [t.shape for t in dec(torch.rand(5, 5))] == [(5, 6), (5, 6)]
    with pytest.raises(ValueError, match="likelihood must be one of"):
        encoder_decoder(6, 2, likelihood="poisson")


@pytest.mark.parametrize("shape", [(8, 8), (28, 28), (28, 20)])
def test_shapes(shape):
    enc, dec = ConvGaussianEncoder(shape, 3, (4, 8)), ConvBernoulliDecoder(3, shape, (8, 4))
    x = torch.rand(5, *shape)
    loc, scale = enc(x)
    assert loc.shape == scale.shape == (5, 3) and (scale > 0).all()
    assert enc(x.reshape(5, -1))[0].shape == (5, 3)
    assert dec(loc).shape == (5, shape[0] * shape[1])
    assert dec(torch.randn(2, 5, 3)).shape == (2, 5, shape[0] * shape[1])  # importance samples kept


def test_bad_arguments():
    with pytest.raises(ValueError, match="x_shape must be"):
        ConvGaussianEncoder((64,), 3)
    with pytest.raises(ValueError, match="positive integer"):
        ConvBernoulliDecoder(3, (8, 8), (0,))


class ConvVAE(Story):
    def __init__(self, *, x_shape=(8, 8), z_dim: int = 2):
        super().__init__()
        self.z_dim = z_dim
        self.encoder = ConvGaussianEncoder(x_shape, z_dim, (4,))
        self.decoder = ConvBernoulliDecoder(z_dim, x_shape, (4,))

    def model(self, x, y=None):
        self.register_params()
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(x.new_zeros(len(x), self.z_dim), 1.0).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=self.decoder(z)).to_event(1), obs=x.reshape(len(x), -1))

    def guide(self, x, y=None):
        self.register_params()
        with pyro.plate("data", len(x)):
            pyro.sample("z", dist.Normal(*self.encoder(x)).to_event(1))


def test_conv_vae_trains_and_scores():
    x = (torch.rand(64, 8, 8) > 0.5).float()
    model = ConvVAE().fit(x, epochs=2, batch_size=32, progress=False)
    assert model.checked.elbo == "trace"
    assert torch.isfinite(model.log_prob(x[:4], num_samples=8)).all()
