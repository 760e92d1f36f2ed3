"""A family's subsection of the tour, the same for every family (:mod:`probgen.report.tour`): trained on
the tour's data, 64 samples, its test log-likelihood from the one estimator (:func:`probgen.evaluate.score`)
and, for a story whose likelihood is exact and whose guide is real, the IWAE estimate from that guide beside
it. A section shows one for every family its registry entry places there beyond the section's own
(``register_model(..., tour=KEY)``), so a new family appears without an edit here.
"""
from __future__ import annotations

__all__ = ["tour_families", "continuous", "family_subsection", "family_scores"]


def tour_families(stop: str | None = None) -> list[str]:
    """The registered families (:data:`probgen.recipes.models.MODELS`) that appear in the tour, in registration
    order: those whose entry names section ``stop`` (every section's when ``stop`` is None)."""
    from ..recipes.models import MODELS, load_families

    load_families()
    return [name for name, spec in MODELS.items() if spec.tour is not None and stop in (None, spec.tour)]


def continuous(name: str) -> bool:
    """Family ``name`` is registered for continuous data (``data_defaults={"continuous": True}``: a Gaussian
    story): the tour trains and scores it on dequantized grey levels, as a density, beside the Gaussian mixture,
    and leaves it out of the table of probability masses."""
    from ..recipes.models import model_spec

    return bool((model_spec(name).data_defaults or {}).get("continuous"))


def family_scores(t, model, ds=None) -> dict:
    """``model``'s test log-likelihood on the tour's test set, read from its traits: the estimator it
    declares and, when that is exact and it has a guide, also ``score(..., estimator="iwae")``.

    :param t: the :class:`~probgen.report.tour.Tour` (data, seed, profile's ``iwae_k``).
    :param model: a trained story.
    :param ds: the data it was trained on (default: the tour's).
    :return: ``{"test_log_likelihood", "stderr", "estimator", "num_samples"}`` and, with the IWAE check,
        ``{"iwae": {...the same keys...}, "iwae_gap"}`` (exact minus IWAE, nats per image; ≥ 0 in expectation).
    """
    from ..evaluate import summarize
    from ..recipes.compare import score_model
    from ..recipes.config import seed_everything

    ds, traits = t.ds if ds is None else ds, model.traits

    def one(**how) -> dict:  # the one scoring policy, as the comparison table's rows
        seed_everything(t.seed)
        row = score_model(model, ds, num_samples=t.profile["iwae_k"], seed=t.seed, **how)
        s = summarize(row["values"])
        return {"test_log_likelihood": s.mean, "stderr": s.stderr, "estimator": row["estimator"],
                "num_samples": row["num_samples"]}

    out = one()
    if traits.exact and traits.guide:  # the one model class where the bound can be checked against the truth
        iwae = out["iwae"] = one(estimator="iwae")
        out["iwae_gap"] = out["test_log_likelihood"] - iwae["test_log_likelihood"]
    return out


def family_subsection(sec, t, name: str, **params):
    """Train family ``name`` (the tour's settings ``params`` over its defaults) and show it in ``sec`` under its
    own heading: the registry's one-line description, 64 samples, :func:`family_scores` (also into
    ``t.numbers[sec.key]["families"][name]``). Every step runs in ``t.step``: a failure is written into the
    section and the tour goes on.

    :return: the trained model loaded from its checkpoint, or None when training failed.
    """
    from ..recipes.models import model_spec

    d = t.out / sec.key
    sec.heading(name)
    help_line = model_spec(name).help
    if help_line:
        sec.paragraph(f"{help_line[0].upper()}{help_line[1:]}.")
    ds = t.dequantized() if continuous(name) else t.ds
    model = t.step(sec, f"train {name}", t.train, name, data=None if ds is t.ds else ds, **params)
    if model is None:
        return None
    numbers = t.numbers[sec.key].setdefault("families", {})[name] = {"n_params": int(model.n_params())}
    mean = "sample_mean" in model.traits.offers
    png = d / f"{name}_samples.png"
    if t.step(sec, f"samples {name}", t.sample, name, png, mean=mean) is not None:
        sec.figure(png, f"64 samples of {name}, the story run forwards"
                   + (" (the mean image of p(x | z) for each code)." if mean else "."))
    scores = t.step(sec, f"score {name}", family_scores, t, model, ds)
    if scores is not None:
        numbers.update(scores, data="dequantized grey levels" if ds is not t.ds else "the tour's test set")
        sec.paragraph(_score_line(scores, len(ds.test), model.n_params(), density=ds is not t.ds))
    return model


def _score_line(s: dict, n: int, n_params: int, *, density: bool = False) -> str:
    k = f", K={s['num_samples']}" if s.get("num_samples") else ""
    line = (f"Test log-likelihood ({s['estimator']}{k}): {s['test_log_likelihood']:.2f} ± {s['stderr']:.2f} "
            f"nats per image on {n} test digits, {n_params:,} parameters.")
    if density:
        line += (" It is trained and scored on dequantized grey levels, as a density: compare it with the Gaussian "
                 "mixture's log density in the mixture section, not with the probability masses of the table.")
    iwae = s.get("iwae")
    if iwae is not None:
        line += (f" The same model scored by importance sampling with its guide ({iwae['estimator']}, "
                 f"K={iwae['num_samples']}): {iwae['test_log_likelihood']:.2f} ± {iwae['stderr']:.2f}, "
                 f"exact minus IWAE = {s['iwae_gap']:.3f} nats. Look at the gap: IWAE is a lower bound in "
                 "expectation, and the gap closes as K grows or as the guide approaches the true posterior.")
    return line
