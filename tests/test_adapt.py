"""probgen.adapt: a plain Pyro program (no probgen base class) is fitted, scored, sampled, saved, loaded."""
from __future__ import annotations

import sys

import pyro
import pyro.distributions as dist
import pytest
import torch
from torch import nn

import probgen
from probgen.adapt import PyroProgram, as_story


def _data(n=64, d=6):
    g = torch.Generator().manual_seed(0)
    return (torch.rand(n, d, generator=g) < torch.linspace(0.1, 0.9, d)).float()


class PlainVAE(nn.Module):
    """Pyro-examples style: an nn.Module, pyro.module inside model/guide, sites 'latent'/'obs'."""

    def __init__(self, x_dim=6, z_dim=2, mistake=""):
        super().__init__()
        self.x_dim, self.z_dim, self.mistake = x_dim, z_dim, mistake
        self.dec = nn.Linear(z_dim, x_dim)
        self.enc = nn.Linear(x_dim, 2 * z_dim)

    def model(self, x):
        pyro.module("dec", self.dec)
        m = self.mistake
        if m == "raise":
            return {}["boom"]
        if m == "exit":
            sys.exit(3)
        with pyro.plate("data", len(x)):
            z = pyro.sample("latent", dist.Normal(torch.zeros(len(x), self.z_dim), 1.0).to_event(1))
            if m == "extra_latent":
                pyro.sample("w", dist.Normal(torch.zeros(len(x)), 1.0))
            if m == "discrete":
                pyro.sample("c", dist.Bernoulli(0.5 * torch.ones(len(x))))
            logits = self.dec(z) * (float("nan") if m == "nan" else 1.0)
            if m == "no_obs":
                pyro.sample("obs", dist.Bernoulli(logits=logits).to_event(1))
            elif m != "no_site":
                pyro.sample("obs", dist.Bernoulli(logits=logits, validate_args=False).to_event(1), obs=x)

    def guide(self, x):
        pyro.module("enc", self.enc)
        loc, raw = self.enc(x).chunk(2, -1)
        with pyro.plate("data", len(x)):
            if self.mistake == "shape":
                loc, raw = loc[:, :1], raw[:, :1]
            if self.mistake != "guide_missing":
                pyro.sample("latent", dist.Normal(loc, nn.functional.softplus(raw) + 1e-3).to_event(1))
            if self.mistake == "guide_extra":
                pyro.sample("u", dist.Normal(torch.zeros(len(x)), 1.0))
            if self.mistake == "discrete":
                pyro.sample("c", dist.Bernoulli(0.5 * torch.ones(len(x))))


def model_fn(x):
    w = pyro.param("w", lambda: torch.zeros(2, x.shape[1]))
    with pyro.plate("data", len(x)):
        z = pyro.sample("z", dist.Normal(torch.zeros(len(x), 2), 1.0).to_event(1))
        pyro.sample("x", dist.Bernoulli(logits=z @ w).to_event(1), obs=x)


def guide_fn(x):
    scale = pyro.param("s", lambda: torch.ones(2), constraint=dist.constraints.positive)
    with pyro.plate("data", len(x)):
        pyro.sample("z", dist.Normal(torch.zeros(len(x), 2), scale).to_event(1))


@pytest.mark.parametrize("make", [lambda: PlainVAE(), lambda: (model_fn, guide_fn)], ids=["module", "functions"])
def test_fit_score_sample_save_load(tmp_path, make):
    program, x = make(), _data()
    story = probgen.fit(program, x, epochs=3, batch_size=32, progress=False, lr=0.05)
    assert isinstance(story, PyroProgram) and story.checked.observed and story.checked.latent
    before = {k: v.clone() for k, v in story.state_dict().items()}
    assert before  # every parameter, whatever registered it, is in the state dict
    torch.manual_seed(1)
    ll = probgen.log_likelihood(program, x, num_samples=16)  # the same wrapper: the trained parameters
    assert ll.shape == (64,) and torch.isfinite(ll).all()
    assert probgen.sample(program, 5).shape == (5, 6)
    path = story.save(tmp_path / "mine.pt")
    with pytest.raises(ValueError, match=r"probgen.load\(path, story=") as err:
        probgen.load(path)
    assert "\n" not in str(err.value)
    pyro.clear_param_store()
    loaded = probgen.load(path, story=PlainVAE if isinstance(program, nn.Module) else (model_fn, guide_fn))
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in before.items())
    torch.manual_seed(1)
    assert torch.allclose(probgen.log_likelihood(loaded, x, num_samples=16), ll, atol=1e-4)


def test_two_wrappers_never_share_parameters():
    a, b = as_story(PlainVAE()), as_story(PlainVAE())
    x = _data()
    a.fit(x, epochs=2, batch_size=32, progress=False, lr=0.1)
    b_before = {k: v.clone() for k, v in b.state_dict().items()}
    b.log_prob(x, num_samples=2)
    assert all(torch.equal(b.state_dict()[k], v) for k, v in b_before.items())
    assert not torch.equal(a.program.dec.weight, b.program.dec.weight)


def test_constructor_arguments_are_recovered_and_recorded(tmp_path):
    story = as_story(PlainVAE(x_dim=6, z_dim=3))
    assert story.config == {"x_dim": 6, "z_dim": 3, "mistake": ""}
    story = as_story(PlainVAE, z_dim=3)  # the class and its arguments
    assert story.config["z_dim"] == 3 and story.program.z_dim == 3


@pytest.mark.parametrize("mistake, pattern", [
    ("no_site", r"PlainVAE.model has no observed site"),
    ("no_obs", r"site 'obs' is not observed: pass obs=x"),
    ("guide_missing", r"model site 'latent' has no guide site"),
    ("extra_latent", r"model site 'w' has no guide site"),
    ("guide_extra", r"guide site 'u' is not in the model"),
    ("shape", r"PlainVAE.guide: site 'latent': the guide's value has shape \(4, 1\), the model's has \(4, 2\)"),
    ("discrete", r"PlainVAE.guide: site 'c' is discrete and sampled without enumeration"),
    ("raise", r"PlainVAE.model: KeyError: 'boom' .*\(at .*test_adapt.py:\d+\)"),
    ("exit", r"PlainVAE.model: called sys.exit\(3\) \(at .*test_adapt.py:\d+\): a story must not exit"),
    ("nan", r"PlainVAE.model: site 'obs' has log-prob NaN"),
])
def test_bad_stories_get_one_line_naming_function_and_site(mistake, pattern):
    with pytest.raises(ValueError, match=pattern) as err:
        probgen.fit(PlainVAE(mistake=mistake), _data(), epochs=1, progress=False)
    assert "\n" not in str(err.value)


def test_no_model_or_guide_is_one_line():
    with pytest.raises(ValueError, match="Thing has no guide"):
        as_story(type("Thing", (), {"model": lambda self, x: None})())
