"""GAN: the story, Parzen windows, fit (the objectives and the game: tests/infer/test_adversarial.py)."""
from __future__ import annotations

import math

import pytest
import torch

from probgen.evaluate import parzen_log_prob, select_parzen_bandwidth
from probgen.infer import Callback
from probgen.models.gan import GAN


# -- Parzen windows ------------------------------------------------------------------------------
def test_parzen_matches_the_known_smoothed_density():
    # centres from N(0, I₂) with a Gaussian kernel of std σ: the KDE converges to N(0, (1 + σ²) I₂)
    torch.manual_seed(0)
    centers, sigma = torch.randn(40000, 2), 0.5
    x = torch.tensor([[0.0, 0.0], [1.0, -0.5], [2.0, 1.0]])
    var = 1 + sigma ** 2
    exact = -0.5 * (x ** 2).sum(1) / var - math.log(2 * math.pi * var)
    est = parzen_log_prob(x, centers, sigma)
    assert torch.allclose(est, exact, atol=0.05)


def test_parzen_bernoulli_kernel_is_a_product_of_bernoullis():
    p = torch.tensor([0.9, 0.2, 0.5])
    x = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    eps = 0.1
    q = (1 - eps) * p + eps / 2
    exact = (x * q.log() + (1 - x) * (1 - q).log()).sum(1)
    est = parzen_log_prob(x, p.expand(5, 3), eps, kernel="bernoulli")
    assert torch.allclose(est, exact, atol=1e-6)
    # a mass: summing over all 8 binary vectors gives 1
    grid = torch.tensor([[a, b, c] for a in (0.0, 1.0) for b in (0.0, 1.0) for c in (0.0, 1.0)])
    assert float(parzen_log_prob(grid, torch.rand(7, 3), 0.3, kernel="bernoulli").exp().sum()) == pytest.approx(1.0)


def test_bandwidth_chosen_on_validation_data():
    torch.manual_seed(1)
    centers, val = torch.randn(5000, 1), torch.randn(500, 1)
    best, scores = select_parzen_bandwidth(val, centers, candidates=[0.01, 0.1, 0.3, 3.0])
    assert best in (0.1, 0.3)  # too narrow overfits the centres, too wide oversmooths
    assert scores[best] == max(scores.values())
    entropy = 0.5 * math.log(2 * math.pi * math.e)  # −E log N(x; 0, 1)
    assert scores[best] == pytest.approx(-entropy, abs=0.1)


def test_gan_log_prob_needs_a_bandwidth_then_is_finite():
    gan = GAN("mlp", x_shape=[8, 8], z_dim=2, hidden=[8])
    with pytest.raises(ValueError, match="fit_parzen"):
        gan.log_prob(torch.rand(3, 8, 8))
    scores = gan.fit_parzen(torch.rand(20, 8, 8), num_samples=200)
    assert len(scores) > 3 and math.isfinite(float(gan.parzen_bandwidth))
    lp = gan.log_prob(torch.rand(4, 8, 8), num_samples=200)
    assert lp.shape == (4,) and torch.isfinite(lp).all()
    gan.fit_parzen((torch.rand(20, 8, 8) > 0.5).float(), num_samples=200)
    assert bool(gan.parzen_binary)  # binary data: the Bernoulli kernel (a log mass, ≤ 0)
    assert (gan.log_prob((torch.rand(4, 8, 8) > 0.5).float(), num_samples=200) <= 0).all()


# -- the model as a probgen model --------------------------------------------------------------
def test_constructor_validation():
    with pytest.raises(ValueError, match="arch"):
        GAN("resnet")
    with pytest.raises(ValueError, match="divisible"):
        GAN("dcgan", x_shape=[10, 10], hidden=[8, 8])
    with pytest.raises(ValueError, match="2-D images"):
        GAN("dcgan", x_shape=[64], hidden=[8])
    with pytest.raises(ValueError, match="z_dim"):
        GAN(z_dim=0)


def test_cannot_observe_x():
    with pytest.raises(ValueError, match="no likelihood"):
        GAN().model(torch.rand(2, 8, 8))


def test_save_load_roundtrip(tmp_path):
    from probgen.models import load

    gan = GAN("dcgan", x_shape=[8, 8], z_dim=3, hidden=[4, 8], loss="wgan-gp")
    gan.fit_parzen(torch.rand(10, 8, 8), num_samples=50)
    path = gan.save(tmp_path / "gan.pt")
    back = load(path)
    assert isinstance(back, GAN) and back.config == gan.config
    z = torch.randn(5, 3)
    assert torch.allclose(back.decode(z), gan.eval().decode(z))
    assert float(back.parzen_bandwidth) == float(gan.parzen_bandwidth)
    assert back.sample(4).shape == (4, 8, 8)
    assert back.sample(4, temperature=0.5).shape == (4, 8, 8)


def test_spectral_norm_bounds_every_discriminator_layer(tmp_path):
    from probgen.models import load

    torch.manual_seed(0)
    for arch, hidden in (("mlp", [16, 32]), ("dcgan", [4, 8])):
        gan = GAN(arch, x_shape=[8, 8], z_dim=3, hidden=hidden, spectral_norm=True, ema=0.9, loss="hinge")
        plain = GAN(arch, x_shape=[8, 8], z_dim=3, hidden=hidden)
        x = torch.rand(16, 8, 8)
        for _ in range(30):  # power iterations run in training-mode forward passes
            gan.discriminator(x)
        layers = [m for m in gan.discriminator.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
        assert layers and all(torch.nn.utils.parametrize.is_parametrized(m, "weight") for m in layers)
        for m in layers:
            if isinstance(m, torch.nn.Linear):  # σ_max of the normalised matrix is 1
                assert float(torch.linalg.matrix_norm(m.weight.detach(), 2)) == pytest.approx(1.0, abs=0.05)
        assert not any(torch.nn.utils.parametrize.is_parametrized(m) for m in plain.discriminator.modules())
        back = load(gan.save(tmp_path / f"{arch}.pt"))  # the option and the averaged G travel in the file
        assert back.config["spectral_norm"] and back.ema == 0.9
        gan.eval()
        assert torch.allclose(back.discriminator(x), gan.discriminator(x))
        z = torch.randn(4, 3)
        assert torch.allclose(back.decode(z), gan.decode(z))


def test_fit_toy_writes_checkpoints_and_resumes(tmp_path):
    torch.manual_seed(0)
    x = torch.cat([torch.randn(128, 1) * 0.3 - 2, torch.randn(128, 1) * 0.3 + 2])
    gan = GAN("mlp", x_shape=[1], z_dim=2, hidden=[16], output="linear")
    seen = []

    class FixedSamples(Callback):  # the per-epoch grid a recipe draws: G of the fixed codes
        def on_epoch_end(self, trainer, record):
            seen.append((record["epoch"], trainer.model.decode(trainer.model.fixed_z).shape))

    gan.fit(x, epochs=2, batch_size=64, progress=False, checkpoint=tmp_path / "g.pt", smoothing=0.1,
            instance_noise=0.2, callbacks=[FixedSamples()],
            monitor=lambda s: {"coverage": 1.0 if len(seen) == 0 else 0.5}, monitor_n=10)
    assert [e for e, _ in seen] == [1, 2] and seen[0][1] == (64, 1)  # the fixed-noise samples
    hist = gan.train_result.history
    assert len(hist) == 2 and {"d_loss", "g_loss", "d_real", "d_fake"} <= set(hist[0])
    assert gan.train_result.warnings and "mode collapse" in gan.train_result.warnings[0]
    assert (tmp_path / "g.pt").is_file() and (tmp_path / "g.last.pt").is_file()
    again = GAN("mlp", x_shape=[1], z_dim=2, hidden=[16], output="linear")
    again.fit(x, epochs=3, batch_size=64, progress=False, checkpoint=tmp_path / "g.pt", resume=True)
    assert [r["epoch"] for r in again.train_result.history] == [1, 2, 3]


def test_fit_with_val_chooses_the_parzen_bandwidth_after_the_game():
    """GAN.fit is Story.fit: the adversarial trainer plays, end_fit picks the bandwidth on val."""
    from probgen.story import Story

    torch.manual_seed(0)
    x = torch.randn(64, 1)
    gan = GAN("mlp", x_shape=[1], z_dim=2, hidden=[8], output="linear")
    assert GAN.fit is Story.fit and gan.traits.trainers == ("adversarial",) and gan.traits.estimator == "parzen"
    gan.fit(x, val=x[:32], epochs=1, batch_size=32, progress=False)
    assert len(gan.train_result.history) == 1 and math.isfinite(float(gan.parzen_bandwidth))
    with pytest.raises(ValueError, match="fitted by adversarial"):
        gan.fit(x, method="svi")
