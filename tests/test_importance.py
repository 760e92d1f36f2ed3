"""probgen.importance: programs that cannot be vectorised are scored one particle at a time (said once),
global sites are left out of each example's weight (and said), an enumerated-only story is exact."""
from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import config_enumerate
from pyro.infer.autoguide import AutoDelta
from torch import nn

import probgen
from probgen.importance import scoring_plan


def _bits(n=8):
    g = torch.Generator().manual_seed(0)
    return (torch.rand(n, 6, generator=g) < torch.linspace(0.1, 0.9, 6)).float()


class ExpandVAE(nn.Module):
    """Common Pyro code that trains but cannot take a particle plate: the likelihood ``.expand(x.shape)``."""

    def __init__(self, expand=True):
        super().__init__()
        self.expand = expand
        self.dec, self.enc = nn.Linear(2, 6), nn.Linear(6, 4)

    def model(self, x):
        pyro.module("dec", self.dec)
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([len(x), 2]).to_event(1))
            like = dist.Bernoulli(logits=self.dec(z))
            pyro.sample("x", (like.expand(x.shape) if self.expand else like).to_event(1), obs=x)

    def guide(self, x):
        pyro.module("enc", self.enc)
        loc, raw = self.enc(x).chunk(2, -1)
        with pyro.plate("data", len(x)):
            pyro.sample("z", dist.Normal(loc, raw.exp()).to_event(1))


def test_a_program_that_cannot_be_vectorised_is_scored_one_particle_at_a_time(capsys):
    x = _bits()
    plain, expand = ExpandVAE(expand=False), ExpandVAE()
    expand.load_state_dict(plain.state_dict())  # the same joint and proposal, written two ways
    torch.manual_seed(0)
    want = probgen.log_likelihood(plain, x, num_samples=200)
    torch.manual_seed(0)
    got = probgen.log_likelihood(expand, x, num_samples=200)
    assert torch.allclose(got, want, atol=1e-5)  # the same estimator, the very same draws, one at a time
    probgen.log_likelihood(expand, x, num_samples=5)
    said = [ln for ln in capsys.readouterr().err.splitlines() if "cannot be drawn at once" in ln]
    assert len(said) == 1  # once per story
    assert "ExpandVAE" in said[0] and "one at a time" in said[0] and "one run of the model per particle" in said[0]


@config_enumerate
def gmm(data):
    """The GMM tutorial's model: ``locs[assignment]`` without Vindex, global latents outside the data plate."""
    weights = pyro.sample("weights", dist.Dirichlet(0.5 * torch.ones(2)))
    with pyro.plate("components", 2):
        locs = pyro.sample("locs", dist.Normal(torch.zeros(3), 10.0).to_event(1))
    scale = pyro.sample("scale", dist.LogNormal(0.0, 2.0))
    with pyro.plate("data", len(data)):
        assignment = pyro.sample("assignment", dist.Categorical(weights))
        pyro.sample("obs", dist.Normal(locs[assignment], scale).to_event(1), obs=data)


def test_an_enumerated_story_with_a_point_estimate_is_exact_and_says_what_it_is():
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(20, 3, generator=g) - 3, torch.randn(20, 3, generator=g) + 3])
    guide = AutoDelta(poutine.block(gmm, expose=["weights", "locs", "scale"]))
    story = probgen.fit((gmm, guide), x, epochs=3, batch_size=40, progress=False, lr=0.1)
    plan = scoring_plan(story, x)
    assert plan.global_sites == ("weights", "locs", "scale") and plan.enumerated == ("assignment",)
    assert plan.exact and plan.point_globals and not plan.local_guided
    s = probgen.score(story, x, num_samples=1000)
    assert s.estimator == "exact, enumerated" and s.k is None and s.log_weights is None
    assert s.extra["global_latents"].startswith("global latent sites 'weights', 'locs', 'scale': log p(x_i | θ̂)")
    theta = guide.median(x)  # log p(x_i | θ̂) = log Σ_c w_c N(x_i | μ_c, σ), by hand
    comp = dist.Normal(theta["locs"], theta["scale"]).log_prob(x[:, None]).sum(-1) + theta["weights"].log()
    assert torch.allclose(s.values.float(), torch.logsumexp(comp, -1), atol=1e-4)


def test_refine_refuses_global_sites_in_one_line():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(10, 3, generator=g)
    guide = pyro.infer.autoguide.AutoNormal(poutine.block(gmm, expose=["weights", "locs", "scale"]))
    probgen.fit((gmm, guide), x, epochs=1, batch_size=10, progress=False)
    with pytest.raises(ValueError, match=r"refine: the global sites 'weights', 'locs', 'scale' are drawn once"):
        probgen.log_likelihood((gmm, guide), x, num_samples=4, refine=2)


def test_an_interrupted_refine_leaves_no_plate_behind(monkeypatch):
    """Ctrl-C between a plate's dim allocation and its push used to leave the dim taken: every later call
    failed with "plates ... collide" / "duplicate plate"."""
    from pyro.poutine.messenger import Messenger
    from pyro.poutine.runtime import _DIM_ALLOCATOR, _PYRO_STACK

    vae, x = ExpandVAE(expand=False), _bits()
    enter, calls = Messenger.__enter__, []

    def interrupted(self):
        if getattr(self, "name", None) == "data" and len(calls) < 1 and _DIM_ALLOCATOR._stack:
            calls.append(self)
            raise KeyboardInterrupt  # after IndepMessenger.__enter__ allocated the dim, before the push
        return enter(self)

    monkeypatch.setattr(Messenger, "__enter__", interrupted)
    with pytest.raises(KeyboardInterrupt):
        probgen.log_likelihood(vae, x, num_samples=4, refine=3)
    monkeypatch.setattr(Messenger, "__enter__", enter)
    assert calls and not _DIM_ALLOCATOR._stack and not _PYRO_STACK
    assert torch.isfinite(probgen.log_likelihood(vae, x, num_samples=4, refine=2)).all()


def test_log_weights_of_a_vectorisable_story_are_unchanged():
    """Only global sites leave the weight: a VAE's weights are log p(x, z) − log q(z | x) as before."""
    vae, x = probgen.as_story(ExpandVAE(expand=False)), _bits(4)
    assert scoring_plan(vae, x).global_sites == ()
    torch.manual_seed(0)
    lw = probgen.evaluate.log_weights(vae, x, 3)
    torch.manual_seed(0)
    with pyro.plate("iwae_particles", 3, dim=-2):
        guide_tr = poutine.trace(vae.guide).get_trace(x)
        model_tr = poutine.trace(poutine.replay(vae.model, trace=guide_tr)).get_trace(x)
    want = sum(s["fn"].log_prob(s["value"]) for s in model_tr.nodes.values() if s["type"] == "sample") - \
        sum(s["fn"].log_prob(s["value"]) for s in guide_tr.nodes.values() if s["type"] == "sample")
    assert lw.shape == (3, 4) and torch.allclose(lw, want.detach(), atol=1e-5)
    assert math.isfinite(float(lw.sum()))
