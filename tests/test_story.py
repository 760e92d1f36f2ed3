"""Story: objective detection when fitting, automatic guides, safe loading (the checks: test_check.py)."""
from __future__ import annotations

import math

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


def _families() -> list[type]:
    import probgen.models
    from probgen.story import REGISTRY

    probgen.models._import_all()
    return [cls for cls in REGISTRY.values() if cls.__module__.startswith("probgen.models.")]


#: ability -> what a class that offers it must have (a method, or a keyword of ``sample``)
_ABILITY = {"encode": "encode", "decode": "decode", "transfer": "transfer", "complete": "complete",
            "responsibilities": "responsibilities", "cluster": "cluster_probs", "sample_mean": "sample(mean)",
            "sample_label": "sample(label)", "sample_temperature": "sample(temperature)", "text": "to_text",
            "label_prior": "label_prior"}


def _has(cls: type, what: str) -> bool:
    import inspect

    if what.startswith("sample("):
        return what[7:-1] in inspect.signature(cls.sample).parameters
    return callable(getattr(cls, what, None))


def test_every_family_is_a_passive_story_that_declares_what_it_is():
    """No family writes its own fit (Story.fit hands it to its trainer) and none keeps the older
    capability attributes: each declares Traits, and what it offers exists."""
    from probgen.story import Traits

    families = _families()
    assert {"gmm", "vae", "cvae", "gan", "autoencoder", "pixel", "sentence-vae", "mixture_vae", "hvae"} <= {
        cls.kind for cls in families}
    for cls in families:
        assert cls.fit is Story.fit, f"{cls.__name__} overrides fit"
        for old in ("has_exact_log_prob", "needs_labels", "estimator"):
            assert old not in cls.__dict__, f"{cls.__name__}.{old}: declare it in traits"
        assert isinstance(cls.traits, Traits) and "traits" in cls.__dict__, cls.__name__
        missing = [a for a in cls.traits.offers if not _has(cls, _ABILITY[a])]
        assert not missing, f"{cls.__name__} offers {missing} without the methods"


def test_traits_decided_by_a_constructor_argument():
    from probgen.models import GMM, PixelModel, SentenceVAE

    lm, vae = SentenceVAE(10, 4, 4, 2, latent=False), SentenceVAE(10, 4, 4, 2)
    assert lm.traits.exact and not lm.traits.guide and lm.traits.offers == {"text", "sample_temperature"}
    assert vae.traits.estimator == "iwae" and {"encode", "decode"} <= vae.traits.offers
    assert type(lm).traits == type(vae).traits == vae.traits  # the class's declaration is not changed
    conditional = PixelModel(shape=(4, 4), channels=4, n_layers=1, n_classes=3)
    assert conditional.needs_labels and "sample_label" in conditional.traits.offers
    assert not PixelModel(shape=(4, 4), channels=4, n_layers=1).needs_labels
    assert GMM(2).traits.trainers == ("em", "svi") and GMM(2).has_exact_log_prob
    levels = PixelModel(shape=(4, 4), channels=4, n_layers=1, likelihood="categorical", levels=17)
    assert levels.dequantization_log_volume() == pytest.approx(-16 * math.log(17))
    assert conditional.dequantization_log_volume() == 0.0  # binary pixels are scored as they are


def test_base_defaults_instead_of_probing():
    """What callers read on any story exists on the base: no hasattr needed."""
    model, x = TinyVAE(), _data(n=4)
    assert model.label_prior(x, None) is None and model.label_log_prior(x, torch.zeros(4)) is None
    assert model.checked is None and model.train_result is None and model.checkpoint_data is None
    assert dict(model.checkpoint_extra) == {} and model.dequantization_log_volume() == 0.0
    with pytest.raises(TypeError):
        model.checkpoint_extra["k"] = 1  # the shared default cannot be changed by accident


def test_models_finds_its_family_modules_by_itself():
    from pathlib import Path

    import probgen.models

    files = {p.stem for p in Path(probgen.models.__file__).parent.glob("*.py") if not p.stem.startswith("_")}
    assert set(probgen.models.MODULES.values()) == files
    for cls in _families():
        assert getattr(probgen.models, cls.__name__) is cls
    assert "load" in probgen.models.__all__ and "GMM" in dir(probgen.models)
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        probgen.models.Nothing  # noqa: B018
