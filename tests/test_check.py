"""probgen.check: one-line errors naming the site, objective detection, the trace helpers."""
from __future__ import annotations

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import pytest
import torch

from probgen.check import ELBOS, check_story, is_enumerated, resolve_elbo, sample_sites
from probgen.story import Story


def _data(n=40, d=3):
    g = torch.Generator().manual_seed(0)
    return torch.tensor([[-3.0] * d, [3.0] * d])[torch.arange(n) % 2] + 0.3 * torch.randn(n, d, generator=g)


class TinyVAE(Story):
    """A small VAE whose mistakes the tests switch on one at a time."""

    def __init__(self, *, mistake: str = "none", d: int = 3):
        super().__init__()
        self.mistake = mistake
        self.enc = torch.nn.Linear(d, 4)
        self.dec = torch.nn.Linear(2, d)

    def model(self, x, y=None):
        self.register_params()
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(torch.zeros(len(x), 2), 1.0).to_event(1))
            loc = self.dec(z)
            if self.mistake == "no_obs":
                pyro.sample("x", dist.Normal(loc, 1.0).to_event(1))
            elif self.mistake == "no_to_event":
                pyro.sample("x", dist.Normal(loc, 1.0), obs=x)
            elif self.mistake == "shape":
                pyro.sample("x", dist.Normal(loc, 1.0).to_event(1), obs=x.reshape(len(x), 1, -1).expand(-1, 2, -1))
            else:
                pyro.sample("x", dist.Normal(loc, 1.0).to_event(1), obs=x)

    def guide(self, x, y=None):
        self.register_params()
        name = "zz" if self.mistake == "rename" else "z"
        with pyro.plate("data", len(x)):
            loc, raw = self.enc(x).chunk(2, -1)
            if self.mistake != "no_guide_site":
                pyro.sample(name, dist.Normal(loc, torch.nn.functional.softplus(raw) + 1e-3).to_event(1))


def test_plain_story_keeps_declared_elbo():
    model = TinyVAE()
    assert model.check(_data()).elbo == "trace"
    model.elbo = "meanfield"  # analytic KL, declared
    info = model.check(_data())
    assert info.elbo == "meanfield" and info.latent == ["z"] and info.observed == ["x"]


@pytest.mark.parametrize("mistake, pattern", [
    ("rename", "guide site 'zz' is not in the model"),
    ("no_guide_site", "model site 'z' has no guide site"),
    ("no_obs", "site 'x' is not observed: pass obs=x"),
    ("no_to_event", "site 'x'.*to_event"),
    ("shape", "site 'x'.*shape"),
])
def test_mistakes_name_the_site_in_one_line(mistake, pattern):
    with pytest.raises(ValueError, match=pattern) as err:
        TinyVAE(mistake=mistake).fit(_data(), epochs=1, progress=False)
    assert "\n" not in str(err.value)


def test_network_shape_error_is_one_line():
    with pytest.raises(ValueError, match=r"TinyVAE.guide: .*shapes cannot be multiplied") as err:
        TinyVAE().fit(_data(d=5), epochs=1, progress=False)
    assert "\n" not in str(err.value)


def test_check_leaves_rng_untouched():
    model, x = TinyVAE(), _data()
    torch.manual_seed(3)
    model.check(x)
    a = torch.rand(3)
    torch.manual_seed(3)
    assert torch.equal(a, torch.rand(3))


def test_check_story_is_what_story_check_runs():
    model, x = TinyVAE(), _data()
    assert check_story(model, x) == model.check(x)


def test_resolve_elbo():
    assert set(ELBOS) >= {"trace", "meanfield", "enum", "jit-enum"}
    assert resolve_elbo(TinyVAE, None, []) == "trace"
    assert resolve_elbo(TinyVAE, "auto", ["c"]) == "enum"
    declared_jit = type("JitTiny", (), {"elbo": "jit"})
    assert resolve_elbo(declared_jit, None, ["c"]) == "jit-enum"  # the declared jit objective, enumerated
    with pytest.raises(ValueError, match="cannot sum out the enumerated site 'c'"):
        resolve_elbo(TinyVAE, "trace", ["c"])
    with pytest.raises(ValueError, match="unknown elbo 'nope'"):
        resolve_elbo(TinyVAE, "nope", [])


def test_trace_helpers():
    def model():
        with pyro.plate("data", 3):
            pyro.sample("c", dist.Categorical(logits=torch.zeros(2)), infer={"enumerate": "parallel"})
            pyro.sample("x", dist.Normal(0.0, 1.0), obs=torch.zeros(3))

    tr = poutine.trace(model).get_trace()
    sites = sample_sites(tr)
    assert list(sites) == ["c", "x"]  # the plate's subsample site is left out
    assert is_enumerated(sites["c"]) and not is_enumerated(sites["x"])
