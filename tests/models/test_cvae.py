"""CVAE: shapes and API, save/load, IWAE with labels, and transfer on a tiny trained model."""
from __future__ import annotations

import pyro
import pyro.poutine as poutine
import pytest
import torch

from probgen.models import CVAE, load


def _tiny(**kw):
    return CVAE(64, 10, z_dim=3, hidden=(16,), x_shape=(8, 8), **kw)


def test_shapes_and_sites():
    m = _tiny()
    x = torch.bernoulli(torch.full((5, 8, 8), 0.3))
    y = torch.tensor([0, 1, 2, 3, 9])
    tr = poutine.trace(m.guide).get_trace(x, y)
    assert tr.nodes["z"]["value"].shape == (5, 3)
    mtr = poutine.trace(poutine.replay(m.model, trace=tr)).get_trace(x, y)
    assert {"z", "x"} <= set(mtr.nodes) and mtr.nodes["x"]["is_observed"]
    loc, scale = m.encode(x, y)
    assert loc.shape == scale.shape == (5, 3) and (scale > 0).all()
    assert m.decode(loc, y).shape == (5, 8, 8)
    assert m.decode(loc, 4).shape == (5, 8, 8)
    s = m.sample(7, label=2)
    assert s.shape == (7, 8, 8) and 0 <= float(s.min()) and float(s.max()) <= 1
    assert set(m.sample(4, label=5, mean=True).flatten().tolist()) - {0.0, 1.0}  # means are grey
    assert m.sample(12).shape == (12, 8, 8)  # classes in turn
    assert m.transfer(x, y, torch.arange(5)).shape == (5, 8, 8)
    assert m.needs_labels


def test_bad_labels_are_clear():
    m = _tiny()
    x = torch.zeros(3, 8, 8)
    with pytest.raises(ValueError, match="labels"):
        m.sample(2, label=10)
    with pytest.raises(ValueError, match="labels"):
        m.fit(x, epochs=1, progress=False)
    with pytest.raises(ValueError, match="3 examples and 2 labels"):
        m.log_prob(x, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="n_classes"):
        CVAE(64, 1)


def test_fit_log_prob_save_load(tmp_path, digits):
    m = CVAE(digits.x_dim, digits.n_classes, z_dim=2, hidden=(32,), x_shape=digits.shape)
    m.fit(digits.train[:256], y=digits.train_labels[:256], epochs=2, batch_size=64, progress=False)
    lp = m.log_prob(digits.test[:6], digits.test_labels[:6], num_samples=8)
    assert lp.shape == (6,) and torch.isfinite(lp).all() and (lp < 0).all()
    path = m.save(tmp_path / "cvae.pt")
    for loaded in (CVAE.load(path), load(path)):
        z = torch.randn(4, 2)
        torch.testing.assert_close(loaded.decode(z, 3), m.decode(z, 3))


def test_transfer_keeps_target_class(digits):
    """A briefly trained CVAE redraws test digits as the requested class.

    The judge is a nearest-class-mean classifier on the training images (cheap; the
    decoded means are prototype-like, so it suits them).
    """
    pyro.set_rng_seed(0)
    m = CVAE(digits.x_dim, digits.n_classes, z_dim=4, hidden=(64,), x_shape=digits.shape)
    m.fit(digits.train, y=digits.train_labels, epochs=10, batch_size=128, lr=5e-3, progress=False, patience=None)
    centroids = torch.stack([digits.train[digits.train_labels == k].mean(0) for k in range(10)]).reshape(10, -1)
    x, y = digits.test[:100], digits.test_labels[:100]
    y_to = (y + 1 + torch.arange(100) % 9) % 10  # always another class
    out = m.transfer(x, y, y_to)  # 100 × 8 × 8
    pred = torch.cdist(out.reshape(100, -1), centroids).argmin(-1)
    rate = float((pred == y_to).float().mean())
    assert rate >= 0.8, rate
