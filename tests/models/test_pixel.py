"""PixelModel: causality of both backbones, exact log-lik, sampling and completion."""
from __future__ import annotations

import pyro
import pytest
import torch

from probgen.models import PixelModel
from probgen.nn import GatedPixelCNN, RowLSTMNet

SHAPE = (5, 6)
BACKBONES = ["gated", "rowlstm"]


def tiny(backbone: str, likelihood: str = "bernoulli", **kw) -> PixelModel:
    return PixelModel(backbone, shape=SHAPE, channels=8, n_layers=3, likelihood=likelihood, levels=5, **kw)


def random_images(n: int, likelihood: str, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if likelihood == "bernoulli":
        return torch.randint(0, 2, (n, *SHAPE), generator=g).float()
    return torch.randint(0, 5, (n, *SHAPE), generator=g).float() / 4


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("likelihood", ["bernoulli", "categorical"])
def test_causality(backbone, likelihood):
    """Changing pixel (i, j) never changes the logits at or before (i, j) in raster order."""
    m = tiny(backbone, likelihood, n_classes=3)
    x = random_images(3, likelihood)
    y = torch.tensor([0, 1, 2])
    h, w = SHAPE
    changed_after = 0
    with torch.no_grad():
        base = m.net(x[:, None], y)  # [n, out, H, W]
        for i in range(h):
            for j in range(w):
                x2 = x.clone()
                x2[:, i, j] = 1 - x2[:, i, j] if likelihood == "bernoulli" else (x2[:, i, j] + 0.5) % 1.0
                diff = (m.net(x2[:, None], y) - base).abs().amax(dim=(0, 1)).flatten()  # [H·W] raster
                k = i * w + j
                assert diff[:k + 1].max() < 1e-6, f"pixel ({i},{j}) leaks into logits at or before it"
                changed_after += int(k + 1 < h * w and diff[k + 1:].max() > 1e-6)
    assert changed_after > h * w // 2  # the test can see influence where it is allowed


def test_gated_has_no_blind_spot():
    """With enough layers every earlier pixel reaches the last one (the PixelCNN blind spot is gone)."""
    net = GatedPixelCNN(channels=8, n_layers=5, kernel_size=3, first_kernel=7)
    x = torch.rand(1, 1, 8, 8, requires_grad=True)
    net(x)[0, 0, 7, 7].backward()
    seen = (x.grad[0, 0].abs() > 0).flatten()
    assert seen[:63].all() and not seen[63]


def test_rowlstm_is_causal_through_rows():
    """The Row LSTM reaches the whole row above (its state runs across rows)."""
    net = RowLSTMNet(channels=8, n_layers=2)
    x = torch.rand(1, 1, 6, 6, requires_grad=True)
    net(x)[0, 0, 3, 0].backward()
    seen = (x.grad[0, 0].abs() > 0).flatten()
    assert not seen[3 * 6:].any() and seen[2 * 6:3 * 6].any()


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("likelihood", ["bernoulli", "categorical"])
def test_exact_log_lik_is_sum_of_one_pixel_conditionals(backbone, likelihood):
    m = tiny(backbone, likelihood)
    x = random_images(4, likelihood, seed=1)
    h, w = SHAPE
    total = torch.zeros(4)
    noise = random_images(4, likelihood, seed=2)
    with torch.no_grad():
        for i in range(h):
            for j in range(w):
                # only the pixels before (i, j) are real; everything after is garbage
                seen = noise.clone().flatten(1)
                seen[:, :i * w + j] = x.flatten(1)[:, :i * w + j]
                logits = m.net(seen.view(4, 1, h, w))[:, :, i, j]  # [n, out]
                if likelihood == "bernoulli":
                    lp = torch.distributions.Bernoulli(logits=logits[:, 0]).log_prob(x[:, i, j])
                else:
                    lp = torch.distributions.Categorical(logits=logits).log_prob((x[:, i, j] * 4).round().long())
                total += lp
    exact = m.log_prob(x)
    assert exact.shape == (4,)
    assert torch.allclose(exact, total, atol=1e-4)
    assert torch.allclose(m.conditionals(x).sum((1, 2)), exact, atol=1e-4)
    assert m.bits_per_dim(x) > 0


@pytest.mark.parametrize("backbone", BACKBONES)
def test_sampling_shapes_determinism_and_naive_equivalence(backbone):
    m = tiny(backbone, "categorical")
    pyro.set_rng_seed(5)
    a = m.sample(3, progress=False)
    pyro.set_rng_seed(5)
    b = m.sample(3, progress=False)
    pyro.set_rng_seed(5)
    c = m.sample(3, progress=False, method="naive")
    pyro.set_rng_seed(5)
    d = m.sample(3, progress=False, method="rows")
    assert a.shape == (3, *SHAPE)
    assert torch.equal(a, b)
    assert torch.equal(a, c) and torch.equal(a, d)  # the cached samplers are exact
    assert set(torch.unique(a * 4).tolist()) <= {0.0, 1.0, 2.0, 3.0, 4.0}


@pytest.mark.parametrize("backbone", BACKBONES)
def test_completion_keeps_the_given_rows(backbone):
    m = tiny(backbone)
    x = random_images(4, "bernoulli", seed=3)
    pyro.set_rng_seed(0)
    out = m.complete(x, rows=2, progress=False)
    assert out.shape == x.shape
    assert torch.equal(out[:, :2], x[:, :2])
    pyro.set_rng_seed(0)
    naive = m.complete(x, rows=2, progress=False, method="naive")
    pyro.set_rng_seed(0)
    by_rows = m.complete(x, rows=2, progress=False, method="rows")
    assert torch.equal(out, naive) and torch.equal(out, by_rows)
    assert torch.equal(m.complete(x, rows=SHAPE[0], progress=False), x)
    with pytest.raises(ValueError, match="rows"):
        m.complete(x, rows=9)


def test_conditional_labels_and_fit():
    m = tiny("gated", n_classes=3)
    assert m.needs_labels
    x = random_images(6, "bernoulli")
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    with pytest.raises(ValueError, match="class-conditional"):
        m.log_prob(x)
    with pytest.raises(ValueError, match="labels must lie"):
        m.log_prob(x, torch.full((6,), 3))
    before = m.log_prob(x, y).mean()
    m.fit(x, y=y, epochs=15, batch_size=6, lr=1e-2, progress=False)
    assert m.log_prob(x, y).mean() > before
    assert m.sample(2, label=1, progress=False).shape == (2, *SHAPE)
    assert m.sample(4, progress=False).shape == (4, *SHAPE)  # cycles through the classes


def test_model_without_data_draws_images():
    m = tiny("rowlstm")
    tr = pyro.poutine.trace(m.model).get_trace(None, None, 3)
    assert tr.nodes["x"]["value"].shape == (3, 1, *SHAPE)
    assert torch.isfinite(tr.log_prob_sum())


def test_save_load_round_trip(tmp_path):
    m = tiny("gated", "categorical", n_classes=2)
    x = random_images(2, "categorical")
    y = torch.tensor([0, 1])
    path = m.save(tmp_path / "p.pt")
    from probgen.models import load

    m2 = load(path)
    assert isinstance(m2, PixelModel) and m2.needs_labels
    assert torch.allclose(m.log_prob(x, y), m2.log_prob(x, y))


def test_bad_arguments():
    with pytest.raises(ValueError, match="backbone"):
        PixelModel("lstm")
    with pytest.raises(ValueError, match="odd"):
        PixelModel(kernel_size=4)
    with pytest.raises(ValueError, match="shape"):
        PixelModel(shape=[8])
    m = tiny("gated")
    with pytest.raises(ValueError, match="binary"):
        m.log_prob(torch.full((2, *SHAPE), 0.5))
    with pytest.raises(ValueError, match="shape"):
        m.log_prob(torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match="not class-conditional"):
        m.sample(2, label=1)
    with pytest.raises(ValueError, match="given"):
        m.sample(2, given=torch.zeros(2, 3))
