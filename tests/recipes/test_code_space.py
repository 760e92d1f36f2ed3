"""Why VAE (probgen.recipes.code_space): AE vs VAE on prior codes and on paths between test digits."""
from __future__ import annotations

import pytest
import torch

from probgen.metrics import train_classifier
from probgen.models import VAE, AutoEncoder
from probgen.recipes.code_space import PATH_ROWS, PRIOR_ROWS, code_space_figure, code_space_lines, code_space_test


@pytest.fixture(scope="module")
def pair(digits):
    kw = dict(z_dim=3, hidden=[16], likelihood="bernoulli", x_shape=digits.shape)
    models = []
    for cls in (AutoEncoder, VAE):
        torch.manual_seed(0)
        m = cls(digits.x_dim, **kw)
        m.fit(digits.train[:200], epochs=1, batch_size=100, progress=False)
        models.append(m.eval())
    return models[1], models[0], train_classifier(digits, seed=3, epochs=2)


def test_prior_and_paths_are_judged_side_by_side(pair, digits, tmp_path):
    vae, ae, clf = pair
    res = code_space_test(vae, ae, digits, clf, n_eval=20, pairs=5, steps=4, seed=0)
    assert [r["name"] for r in res["rows"]] == ["real test images", *PRIOR_ROWS]
    assert [r["name"] for r in res["interpolation_rows"]] == list(PATH_ROWS)
    for r in res["rows"] + res["interpolation_rows"]:
        assert 0 < r["mean_confidence"] <= 1 and 0 < r["coverage"] <= 1
    for r in res["interpolation_rows"]:
        assert 0 < r["worst_on_path"] <= r["mean_confidence"] + 1e-6
    # the two real digits of a pair are at the ends of both models' paths, of different classes
    a, b = res["pairs"][0]
    assert digits.test_labels[a] != digits.test_labels[b]
    for key in set(PATH_ROWS.values()):
        p = res["paths"][key]
        assert p.shape == (5, 6, *digits.shape)
        assert torch.equal(p[0, 0], digits.test[a].cpu()) and torch.equal(p[0, -1], digits.test[b].cpu())
    # the same N(0, I) codes for both decoders
    assert torch.allclose(res["samples"]["VAE, z ~ N(0, I)"], vae.sample(20, z=res["z"], mean=True).cpu())
    assert torch.allclose(res["samples"]["AE, z ~ N(0, I)"], ae.sample(20, z=res["z"], mean=True).cpu())
    text = "\n".join(code_space_lines(res))
    assert "worst on path" in text and "= AE (same codes, same decoder)" in text
    from PIL import Image

    assert Image.open(code_space_figure(res, tmp_path / "w.png", show=9, show_paths=3)).format == "PNG"


def test_bad_sizes_are_one_line(pair, digits):
    vae, ae, clf = pair
    with pytest.raises(ValueError, match="--pairs must be >= 1"):
        code_space_test(vae, ae, digits, clf, pairs=0)
