"""diagnostics.nc carries log p(x, z) and log q(z | x) per draw; PSIS posterior means from the file alone."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from probgen import diagnostics as D

from ._ppca import exact_ppca, shift_guide


def _saved(tmp_path, model, x, draws=2000):
    path = D.save_inference_data(D.to_inference_data(model, x, num_samples=draws), tmp_path / "d.nc")
    return path


def test_file_holds_lp_and_lp_approx_per_draw(tmp_path):
    m = exact_ppca()
    x = m.sample(4)
    back = D.load_inference_data(_saved(tmp_path, m, x, draws=50))
    stats = back.sample_stats
    assert {"lp", "lp_approx", "log_weight"} <= set(stats.data_vars)
    assert stats["lp"].dims == ("chain", "draw", "obs") and stats["lp"].shape == (1, 50, 4)
    np.testing.assert_allclose(stats["log_weight"], stats["lp"] - stats["lp_approx"], rtol=1e-6)
    # lp_approx is log q(z | x) of the stored draws; the exact guide makes lp − lp_approx = log p(x) for all
    z = torch.as_tensor(back.posterior["z"].values[0]).float()  # draw × obs × z
    q = torch.distributions.MultivariateNormal(m.encode(x)[0], scale_tril=m.scale_tril.detach())
    np.testing.assert_allclose(stats["lp_approx"].values[0], q.log_prob(z).numpy(), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(stats["log_weight"].values[0], m.log_prob(x).numpy()[None].repeat(50, 0),
                               rtol=1e-4, atol=1e-3)


def test_psis_means_from_the_file_alone_correct_a_biased_guide(tmp_path):
    m = shift_guide(exact_ppca(), 0.5)  # q(z | x) half a posterior sd off the truth
    x = m.sample(6)
    exact = m.posterior(x).mean.numpy()  # 6 × 2
    path = _saved(tmp_path, m, x)
    del m  # nothing but the file from here on
    r = D.psis_posterior_mean(path)
    guide_err = np.abs(r.guide_means["z"] - exact).max()
    psis_err = np.abs(r.means["z"] - exact).max()
    assert guide_err > 0.1 and psis_err < 0.03 and psis_err < guide_err / 4
    assert r.khat.shape == (6,) and (r.khat < 0.7).all() and (r.ess > 200).all()


def test_the_readme_snippet_gives_the_same_means(tmp_path):
    import arviz as az

    m = shift_guide(exact_ppca(), 0.5)
    path = _saved(tmp_path, m, m.sample(3), draws=400)
    idata = az.from_netcdf(path)  # the README's lines, with ArviZ only
    lw = (idata.sample_stats["lp"] - idata.sample_stats["lp_approx"]).stack(__sample__=("chain", "draw"))
    lw, khat = az.psislw(lw.transpose("obs", "__sample__"))
    z = idata.posterior["z"].stack(__sample__=("chain", "draw"))
    mean = (z * np.exp(lw)).sum("__sample__")
    r = D.psis_posterior_mean(path)
    np.testing.assert_allclose(mean.transpose("obs", "z_dim").values, r.means["z"], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(np.asarray(khat), r.khat, rtol=1e-6)


def test_a_file_without_lp_is_refused(tmp_path):
    m = exact_ppca()
    idata = D.to_inference_data(m, m.sample(2), num_samples=5)
    del idata.sample_stats["lp"]
    with pytest.raises(ValueError, match="no sample_stats lp"):
        D.psis_posterior_mean(idata)
    with pytest.raises(ValueError, match="no posterior variable 'w'"):
        D.psis_posterior_mean(D.to_inference_data(m, m.sample(2), num_samples=5), var_names=["w"])
