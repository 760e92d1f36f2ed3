import math

import pyro
import torch

from probgen.models import VAE


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
    from probgen.infer.svi import make_elbo

    x = digits.train[:64]
    est = {name: sum(float(make_elbo(name).loss(vae.model, vae.guide, x)) for _ in range(200)) / 200
           for name in ("trace", "meanfield")}
    assert math.isclose(est["trace"], est["meanfield"], rel_tol=0.02)
