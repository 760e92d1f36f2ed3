"""The VAE-family and GAN recipes called as plain functions (no argv): numbers and paths come back
in the result, the data comes from the checkpoint, and the GAN toy runs through the one adversarial
trainer."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def vae_ckpt(tmp_path_factory):
    from probgen.recipes.config import DataConfig, RunConfig, load_data, replace_given, seed_everything
    from probgen.recipes.models import model_spec
    from probgen.recipes.train import train_model

    out = tmp_path_factory.mktemp("recipes")
    seed_everything(0)
    params = replace_given(model_spec("vae").config(), epochs=1, hidden="16", z_dim=2, batch_size=256)
    return train_model("vae", params, None, RunConfig(out=str(out), quiet=True), load_data(DataConfig()),
                       path=out / "vae.pt").path


def test_traverse_and_interpolate_return_their_grids(vae_ckpt, tmp_path):
    from probgen.recipes.vae import InterpolateConfig, TraverseConfig, interpolate, traverse

    res = traverse(TraverseConfig(checkpoint=str(vae_ckpt), steps=4, out=str(tmp_path / "t.png")))
    assert tuple(res.images.shape) == (4, 4, 8, 8) and res.paths[0].is_file()
    assert 0 <= res.numbers["neighbour_change_mean"] <= res.numbers["neighbour_change_max"]
    res = interpolate(InterpolateConfig(checkpoint=str(vae_ckpt), steps=3, slerp=True, out=str(tmp_path / "i.png")))
    assert tuple(res.images.shape) == (2, 5, 8, 8) and "linear and spherical" in res.lines[0]
    with pytest.raises(ValueError, match="two different dims"):
        traverse(TraverseConfig(checkpoint=str(vae_ckpt), dims=[1, 1], out=str(tmp_path / "t2.png")))


def test_walk_returns_the_norms(vae_ckpt, tmp_path):
    from probgen.recipes.gan import WalkConfig, walk

    res = walk(WalkConfig(checkpoint=str(vae_ckpt), n=3, steps=5, out=str(tmp_path / "w.png")))
    s = res.summary
    assert s["norm_middle_spherical_mean"] > s["norm_middle_linear_mean"] and all(p.is_file() for p in res.paths)


def test_gan_toy_uses_the_adversarial_trainer(tmp_path, monkeypatch):
    import probgen.infer.adversarial as adversarial
    from probgen.recipes.config import RunConfig
    from probgen.recipes.gan import GanToyConfig, gan_toy

    calls = []
    real = adversarial.fit_adversarial
    monkeypatch.setattr(adversarial, "fit_adversarial", lambda *a, **k: calls.append(k) or real(*a, **k))
    res = gan_toy(GanToyConfig(steps=12, snapshots=2, eval_every=4, hidden="8", no_gif=True,
                               run=RunConfig(out=str(tmp_path), quiet=True)))
    assert calls and calls[0]["steps"] == 12 and callable(calls[0]["lr_lambda"])
    assert [r["step"] for r in res.summary["per_step"]] == [4, 8, 12]
    assert res.final_wasserstein > 0 and res.wasserstein_floor > 0 and len(res.mode_mass) == 2
    assert not (tmp_path / "toy.gif").exists()


def test_pictures_take_the_data_from_the_checkpoint(tmp_path):
    """A VAE trained on 6×6 images from a file: traverse needs no --data (the default 8×8 digits
    would not fit), and an explicit data set that does not fit is a one-line error."""
    import numpy as np

    from probgen.recipes.config import DataConfig, RunConfig, load_data, replace_given
    from probgen.recipes.models import model_spec
    from probgen.recipes.train import train_model
    from probgen.recipes.vae import TraverseConfig, traverse

    rng = np.random.default_rng(0)
    np.save(tmp_path / "small.npy", (rng.random((120, 6, 6)) > 0.5).astype(np.float32))
    data = DataConfig(data=str(tmp_path / "small.npy"))
    params = replace_given(model_spec("vae").config(), epochs=1, hidden="8", z_dim=2, batch_size=64)
    path = train_model("vae", params, data, RunConfig(out=str(tmp_path), quiet=True), load_data(data),
                       path=tmp_path / "vae.pt").path
    res = traverse(TraverseConfig(checkpoint=str(path), steps=3, out=str(tmp_path / "t.png")))
    assert tuple(res.images.shape) == (3, 3, 6, 6)
    with pytest.raises(ValueError, match="pass the data it was trained on"):
        traverse(TraverseConfig(checkpoint=str(path), steps=3, out=str(tmp_path / "t2.png"), data=DataConfig()))


def test_traverse_picks_the_two_most_active_dims_and_says_why(vae_ckpt, tmp_path):
    import torch

    from probgen.models import load
    from probgen.recipes.config import DataConfig, load_data
    from probgen.recipes.vae import TraverseConfig, code_activity, traverse

    model, ds = load(str(vae_ckpt)), load_data(DataConfig())
    kl, what = code_activity(model, ds.test)
    loc, scale = model.encode(ds.test)
    expect = (0.5 * (loc ** 2 + scale ** 2 - 1) - scale.log()).mean(0)  # KL(q(z_d | x) ‖ N(0, 1)) per dim
    assert "KL" in what and torch.allclose(kl, expect.detach().float(), atol=1e-4)
    res = traverse(TraverseConfig(checkpoint=str(vae_ckpt), steps=3, out=str(tmp_path / "t.png")))
    assert res.numbers["dims"] == torch.argsort(kl, descending=True)[:2].tolist()
    assert res.lines[0].startswith(f"dims {res.numbers['dims'][0]} and {res.numbers['dims'][1]}: the two most active")
    res = traverse(TraverseConfig(checkpoint=str(vae_ckpt), dims=[1, 0], steps=3, out=str(tmp_path / "t2.png")))
    assert res.numbers["dims"] == [1, 0] and "as asked (--dims)" in res.lines[0]


def test_sample_draws_decoder_means_unless_draws(vae_ckpt, tmp_path):
    from probgen.recipes.train import SampleConfig, sample

    means = sample(SampleConfig(checkpoint=str(vae_ckpt), n=8, out=str(tmp_path / "m.png"))).samples
    draws = sample(SampleConfig(checkpoint=str(vae_ckpt), n=8, draws=True, out=str(tmp_path / "d.png"))).samples
    assert ((means > 0) & (means < 1)).float().mean() > 0.5  # grey mean images
    assert set(draws.unique().tolist()) <= {0.0, 1.0}  # black-and-white Bernoulli draws
    with pytest.raises(ValueError, match="exclude each other"):
        sample(SampleConfig(checkpoint=str(vae_ckpt), n=2, mean=True, draws=True, out=str(tmp_path / "x.png")))
