"""Story: objective detection when fitting, automatic guides, safe loading (the checks: test_check.py)."""
from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import config_enumerate

from probgen.story import Story
from tests.test_check import TinyVAE


def _data(n=40, d=3):
    g = torch.Generator().manual_seed(0)
    centers = torch.tensor([[-3.0] * d, [3.0] * d])
    return centers[torch.arange(n) % 2] + 0.3 * torch.randn(n, d, generator=g)


class Mix(Story):
    """Two-component Gaussian mixture; the component is an enumerated site, no guide."""

    def __init__(self, *, d: int = 3, style: str = "infer"):
        super().__init__()
        self.style = style
        self.locs = torch.nn.Parameter(torch.tensor([[-1.0] * d, [1.0] * d]))
        if style == "config":
            self.model = config_enumerate(self._story, default="parallel")

    def model(self, x, y=None):
        return self._story(x, y)

    def _story(self, x, y=None):
        self.register_params()
        infer = {"enumerate": "parallel"} if self.style == "infer" else {}
        with pyro.plate("data", len(x)):
            c = pyro.sample("c", dist.Categorical(logits=torch.zeros(2)), infer=infer)
            pyro.sample("x", dist.Normal(self.locs[c], 1.0).to_event(1), obs=x)


@pytest.mark.parametrize("style", ["infer", "config"])
def test_enumerated_site_trains_with_traceenum(style):
    x = _data()
    model = Mix(style=style)
    model.fit(x, epochs=30, batch_size=40, lr=0.1, progress=False)
    assert model.checked.elbo == "enum" and model.checked.enumerated == ["c"]
    # the learned component means move to the data's two centres
    locs = model.locs.detach().sort(0).values
    assert torch.allclose(locs[:, 0], torch.tensor([-3.0, 3.0]), atol=0.5)


def test_explicit_non_enum_elbo_on_enumerated_site_is_refused():
    with pytest.raises(ValueError, match="cannot sum out the enumerated site 'c'"):
        Mix().fit(_data(), epochs=1, elbo="trace", progress=False)


class BayesMean(Story):
    """Global latent mean with an automatic guide: mu ~ N(0, 10), x ~ N(mu, 1)."""

    autoguide = "normal"

    def __init__(self, *, d: int = 3):
        super().__init__()
        self.d = d

    def model(self, x, y=None):
        self.register_params()
        mu = pyro.sample("mu", dist.Normal(torch.zeros(self.d), 10.0).to_event(1))
        with pyro.plate("data", len(x)):
            pyro.sample("x", dist.Normal(mu, 1.0).to_event(1), obs=x)


class BayesMeanMAP(BayesMean):
    autoguide = "delta"


@pytest.mark.parametrize("cls", [BayesMean, BayesMeanMAP])
def test_autoguide_fits_saves_and_loads(cls, tmp_path):
    x = _data() + 2.0  # mean 2
    model = cls().fit(x, epochs=100, batch_size=40, lr=0.2, progress=False, patience=None)
    q = model._autoguide.median()["mu"]
    assert torch.allclose(q, x.mean(0), atol=0.3)
    model.save(tmp_path / "m.pt")
    again = cls.load(tmp_path / "m.pt")
    assert torch.allclose(again._autoguide.median()["mu"], q)
    assert torch.isfinite(again.log_prob(x[:5], num_samples=10)).all()


def test_autoguide_refuses_local_latents():
    class LocalAuto(TinyVAE):
        autoguide = "normal"

        def guide(self, x, y=None):  # back to the default (automatic) guide
            return Story.guide(self, x, y)

    with pytest.raises(ValueError, match="site 'z' has one value per example"):
        LocalAuto().fit(_data(), epochs=1, progress=False)


def test_user_class_cannot_take_a_builtin_kind():
    import probgen.models.vae  # noqa: F401  registers "vae"

    with pytest.raises(ValueError, match="kind 'vae' is taken"):
        type("VAE", (Story,), {"__module__": "user_code"})


def test_log_prob_sums_model_enumerated_sites_exactly():
    """A story whose discrete site is summed out in the model: log_prob is the exact mixture density."""
    x = _data(n=10)
    model = Mix()
    with torch.no_grad():
        comp = dist.Normal(model.locs, 1.0).to_event(1).log_prob(x.unsqueeze(1))  # n × 2
        exact = torch.logsumexp(comp + torch.log(torch.tensor(0.5)), -1)
    assert torch.allclose(model.log_prob(x, num_samples=3), exact, atol=1e-4)
