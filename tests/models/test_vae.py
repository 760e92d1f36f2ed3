import math

import pyro
import torch

from probgen.evaluate import log_likelihood
from probgen.models import VAE


def _ppca_vae(sigma=0.5, wrong=1.0):
    """A linear-Gaussian VAE (= probabilistic PCA) whose exact log-likelihood is known.

    Orthogonal decoder columns make the true posterior diagonal, so the encoder can be set
    to it exactly (``wrong=1``) or to a distorted proposal (``wrong != 1``).
    """
    torch.manual_seed(0)
    x_dim, z_dim = 6, 2
    W = torch.linalg.qr(torch.randn(x_dim, z_dim))[0] * torch.tensor([2.0, 1.0])  # orthogonal columns
    b = torch.randn(x_dim)
    vae = VAE(x_dim, z_dim=z_dim, hidden=(), likelihood="normal")
    inv_softplus = lambda v: v + torch.log(-torch.expm1(-v))  # noqa: E731
    with torch.no_grad():
        head = vae.decoder.head.linear
        head.weight.zero_(); head.bias.zero_()
        head.weight[:x_dim] = W
        head.bias[:x_dim] = b
        head.bias[x_dim:] = inv_softplus(torch.tensor(sigma - vae.decoder.head.min_scale))
        M = W.T @ W + sigma**2 * torch.eye(z_dim)  # diagonal
        A = torch.linalg.solve(M, W.T)
        post_sd = sigma / torch.sqrt(torch.diagonal(M))
        enc = vae.encoder.head.linear
        enc.weight.zero_(); enc.bias.zero_()
        enc.weight[:z_dim] = A * wrong
        enc.bias[:z_dim] = -(A @ b) * wrong
        enc.bias[z_dim:] = inv_softplus(post_sd * (1.5 if wrong != 1 else 1.0) - vae.encoder.head.min_scale)
    exact = torch.distributions.MultivariateNormal(b, W @ W.T + sigma**2 * torch.eye(x_dim))
    return vae, exact


def test_iwae_is_exact_with_the_true_posterior_as_proposal():
    vae, exact = _ppca_vae()
    x = exact.sample((20,))
    est = log_likelihood(vae, x, num_samples=10)
    assert torch.allclose(est, exact.log_prob(x), atol=1e-3)


def test_iwae_converges_towards_the_exact_log_likelihood():
    vae, exact = _ppca_vae(wrong=0.8)
    x = exact.sample((50,))
    truth = exact.log_prob(x).mean()
    gaps = [float(truth - log_likelihood(vae, x, num_samples=k).mean()) for k in (1, 50, 2000)]
    assert gaps[0] > gaps[1] > gaps[2] > -0.02  # a bound that tightens with K
    assert gaps[2] < 0.05


def test_fit_sample_encode_decode(digits):
    vae = VAE(64, z_dim=4, hidden=(32,), x_shape=(8, 8))
    vae.fit(digits.train, val=digits.val, epochs=3, batch_size=256, progress=False)
    hist = vae.train_result.history
    assert len(hist) == 3 and hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert vae.sample(5).shape == (5, 8, 8)
    m = vae.sample(5, mean=True)
    assert m.shape == (5, 8, 8) and 0 <= m.min() and m.max() <= 1
    loc, scale = vae.encode(digits.test[:7])
    assert loc.shape == scale.shape == (7, 4) and (scale > 0).all()
    assert vae.decode(loc).shape == (7, 8, 8)


def test_iwae_bound_is_above_the_elbo(digits):
    vae = VAE(64, z_dim=4, hidden=(32,))
    vae.fit(digits.train, epochs=2, progress=False)
    x = digits.test[:40]
    elbo = log_likelihood(vae, x, num_samples=1).mean()
    iwae = log_likelihood(vae, x, num_samples=200).mean()
    assert iwae > elbo


def test_save_load_round_trip(tmp_path, digits):
    vae = VAE(64, z_dim=3, hidden=(16,), x_shape=[8, 8])
    vae.fit(digits.train, epochs=1, progress=False)
    vae.save(tmp_path / "v.pt")
    back = VAE.load(tmp_path / "v.pt")
    as_lists = {k: list(v) if isinstance(v, tuple) else v for k, v in vae.config.items()}
    assert back.config == as_lists
    for a, b in zip(vae.state_dict().values(), back.state_dict().values()):
        assert torch.equal(a, b)
    pyro.set_rng_seed(3)
    a = vae.log_prob(digits.test[:10], num_samples=5)
    pyro.set_rng_seed(3)
    b = back.log_prob(digits.test[:10], num_samples=5)
    assert torch.allclose(a, b)


def test_trace_and_meanfield_elbos_agree_in_expectation(digits):
    vae = VAE(64, z_dim=3, hidden=(16,))
    from probgen.train import make_elbo

    x = digits.train[:64]
    est = {name: sum(float(make_elbo(name).loss(vae.model, vae.guide, x)) for _ in range(200)) / 200
           for name in ("trace", "meanfield")}
    assert math.isclose(est["trace"], est["meanfield"], rel_tol=0.02)
