"""probgen.paramstore: every Pyro autoguide works as a wrapped program's guide, set up lazily, on
``poutine.block(model, expose=[...])``; fitted, scored, saved and loaded back into a fresh param store."""
from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import autoguide as ag
from pyro.infer import config_enumerate
from torch import nn

import probgen

K, D = 2, 3


@config_enumerate
def gmm(data):
    """The GMM tutorial's model (pyro.ai/examples/gmm.html): global weights, means and scale."""
    weights = pyro.sample("weights", dist.Dirichlet(0.5 * torch.ones(K)))
    with pyro.plate("components", K):
        locs = pyro.sample("locs", dist.Normal(torch.zeros(D), 10.0).to_event(1))
    scale = pyro.sample("scale", dist.LogNormal(0.0, 2.0))
    with pyro.plate("data", len(data)):
        assignment = pyro.sample("assignment", dist.Categorical(weights))
        pyro.sample("obs", dist.Normal(locs[assignment], scale).to_event(1), obs=data)


def _two_clusters(n=40):
    g = torch.Generator().manual_seed(0)
    return torch.cat([torch.randn(n, D, generator=g) - 3, torch.randn(n, D, generator=g) + 3])


GLOBALS = ["weights", "locs", "scale"]
#: the pyro.infer.autoguide family that applies to a model with global continuous latents
FAMILY = {
    "AutoDelta": {}, "AutoNormal": {}, "AutoDiagonalNormal": {}, "AutoMultivariateNormal": {},
    "AutoLowRankMultivariateNormal": {"rank": 2}, "AutoIAFNormal": {"hidden_dim": [8]},
    "AutoLaplaceApproximation": {}, "AutoStructured": {}, "AutoGaussian": {}, "AutoNormalMessenger": {},
    "AutoHierarchicalNormalMessenger": {}, "AutoRegressiveMessenger": {},
}
POINT = {"AutoDelta", "AutoLaplaceApproximation"}  # a MAP guide: one global point, the score is exact


@pytest.mark.parametrize("name", sorted(FAMILY))
def test_every_autoguide_fits_scores_saves_and_loads(tmp_path, name):
    guide = getattr(ag, name)(poutine.block(gmm, expose=GLOBALS), **FAMILY[name])
    x = _two_clusters()
    story = probgen.fit((gmm, guide), x, epochs=2, batch_size=40, progress=False, lr=0.05)
    torch.manual_seed(1)
    s = probgen.score((gmm, guide), x, num_samples=8, khat=False)
    assert torch.isfinite(s.values).all()
    assert s.estimator == ("exact, enumerated" if name in POINT else "IWAE")
    assert "global latent sites 'weights', 'locs', 'scale'" in s.extra["global_latents"]
    path = story.save(tmp_path / "gmm.pt")
    pyro.clear_param_store()
    again = probgen.load(path, story=(gmm, guide))  # the same guide object: set up again for this wrapper
    torch.manual_seed(1)
    assert torch.allclose(probgen.score(again, x, num_samples=8, khat=False).values, s.values, atol=1e-4)


def test_a_module_level_guide_wrapped_twice_keeps_two_sets_of_parameters():
    guide = ag.AutoDelta(poutine.block(gmm, expose=GLOBALS))
    x = _two_clusters()
    a = probgen.as_story((gmm, guide))
    b = probgen.as_story((gmm, guide))
    a.fit(x, epochs=3, batch_size=40, progress=False, lr=0.1)
    before = {k: v.clone() for k, v in a.state_dict().items()}
    b.fit(x, epochs=1, batch_size=40, progress=False, lr=0.5)  # rebinds the guide to b's parameters
    assert all(torch.equal(a.state_dict()[k], v) for k, v in before.items())
    assert not torch.equal(a.state_dict()["free.AutoDelta_locs"], b.state_dict()["free.AutoDelta_locs"])
    assert set(a.state_dict()) == {"free.AutoDelta_weights", "free.AutoDelta_locs", "free.AutoDelta_scale"}


class GlobalScaleVAE(nn.Module):
    """Per-example codes from an encoder, one global prior scale guided by AutoNormal (an attribute)."""

    def __init__(self, x_dim=6, z_dim=2):
        super().__init__()
        self.z_dim = z_dim
        self.dec, self.enc = nn.Linear(z_dim, x_dim), nn.Linear(x_dim, 2 * z_dim)
        self.global_guide = ag.AutoNormal(poutine.block(self.model, expose=["prior_scale"]))

    def model(self, x):
        pyro.module("dec", self.dec)
        tau = pyro.sample("prior_scale", dist.LogNormal(0.0, 1.0))
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(x.new_zeros(self.z_dim), tau[..., None]).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=self.dec(z)).to_event(1), obs=x)

    def guide(self, x):
        self.global_guide(x)
        pyro.module("enc", self.enc)
        loc, raw = self.enc(x).chunk(2, -1)
        with pyro.plate("data", len(x)):
            pyro.sample("z", dist.Normal(loc, nn.functional.softplus(raw) + 1e-3).to_event(1))


def _bits(n=64):
    g = torch.Generator().manual_seed(0)
    return (torch.rand(n, 6, generator=g) < torch.linspace(0.1, 0.9, 6)).float()


def test_an_autonormal_over_a_global_site_beside_an_encoder(tmp_path):
    x = _bits()
    story = probgen.fit(GlobalScaleVAE(), x, epochs=2, batch_size=32, progress=False, lr=0.05)
    assert {"prior_scale", "z"} <= set(story.checked.latent)
    torch.manual_seed(0)
    s = probgen.score(story, x, num_samples=16)
    assert s.estimator == "IWAE" and s.k == 16
    assert s.extra["global_latents"].startswith("global latent sites 'prior_scale': log E_q(θ) p(x_i | θ)")
    path = story.save(tmp_path / "v.pt")
    pyro.clear_param_store()
    again = probgen.load(path, story=GlobalScaleVAE)  # a fresh instance: its AutoNormal set up from the file
    torch.manual_seed(0)
    assert torch.allclose(probgen.score(again, x, num_samples=16).values, s.values, atol=1e-4)


def test_an_autoguide_over_per_example_sites_is_one_line():
    dec = nn.Linear(2, 6)

    def model(x):
        pyro.module("dec", dec)
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(torch.zeros(len(x), 2), 1.0).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=dec(z)).to_event(1), obs=x)

    with pytest.raises(ValueError, match=r"AutoNormal guides site 'z', which has one value per example") as err:
        probgen.fit((model, ag.AutoNormal(model)), _bits(), epochs=1, batch_size=32, progress=False)
    assert "\n" not in str(err.value)
