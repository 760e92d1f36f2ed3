"""The sections of the tour (:mod:`probgen.report.tour`), one function per section: ``name(sec, t)``
(:func:`section` finds it by the section's key).

A section trains the families whose registry entry names it (``register_model(..., tour=KEY)``,
:meth:`~probgen.report.tour.Tour.families`) through the train recipe: the first of them is the section's
own and gets its dedicated figures (drawn with its recipes and plots, what it can do read from
``model.traits``); every other one gets the same subsection (:func:`probgen.report.families.family_subsection`).
``t`` is the :class:`~probgen.report.tour.Tour` (config, data, folders, numbers, ``step``). Every step that may
fail runs inside ``t.step``, so a failure is written into the section and the tour goes on.
The adversarial section is in :mod:`probgen.report.adversarial`; faces, problems and the user's story in
:mod:`probgen.report.pictures`; "Is the encoder right?" in :mod:`probgen.report.encoder`.
"""
from __future__ import annotations

import math

from ..recipes.config import seed_everything
from .adversarial import adversarial  # noqa: F401 - the tour looks every section up here
from .encoder import encoder, text_collapse  # noqa: F401
from .families import continuous, family_subsection, tour_families
from .pictures import faces, problems, story  # noqa: F401

__all__ = ["pixels", "mixture", "gmm_to_vae", "conditional", "adversarial", "compare", "problems", "encoder", "text",
           "faces", "story", "section", "score_rows"]


def section(key: str):
    """The function that writes section ``key`` (a key of :data:`~probgen.report.tour.SECTIONS`: ``-`` read as
    ``_``), looked up when called so that tests can stub it."""
    fn = globals().get(key.replace("-", "_"))
    if fn is None:
        raise ValueError(f"no tour section {key!r}")
    return fn


def _others(sec, t, **params) -> list:
    """The subsections of the section's families beyond its own (the first registered there)."""
    return [family_subsection(sec, t, name, **params) for name in t.families(sec.key)[1:]]


def _fmt(x, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


# -- 1. pixels ----------------------------------------------------------------------------------
def pixels(sec, t):
    d, p, name = t.out / sec.key, t.profile, t.lead(sec.key)
    model = t.step(sec, f"train {name}", t.train, name, epochs=p["pixel_epochs"],
                   channels=p["pixel_channels"], n_layers=p["pixel_layers"], batch_size=p["pixel_batch"])
    if model is not None:
        _pixel_figures(sec, t, name, model, d)
    _others(sec, t, epochs=p["pixel_epochs"], channels=p["pixel_channels"], batch_size=p["pixel_batch"])


def _pixel_figures(sec, t, name, model, d) -> None:
    import torch

    from ..recipes.pixel import CompleteConfig, complete

    ds, p = t.ds, t.profile
    with torch.no_grad():
        ll = model.log_prob(ds.test)
    bpd = float(-ll.mean() / (math.prod(ds.shape) * math.log(2)))
    t.numbers[sec.key].update(test_log_likelihood=float(ll.mean()), bits_per_dim=bpd, n_params=model.n_params(),
                              estimator=model.traits.estimator)
    sec.paragraph(f"Exact test log-likelihood: {float(ll.mean()):.2f} nats per image "
                  f"({bpd:.3f} bits per pixel) on {len(ds.test)} test digits, {model.n_params():,} parameters, "
                  f"{p['pixel_epochs']} epochs.")
    if t.step(sec, "samples", t.sample, name, d / "samples.png") is not None:
        sec.figure(d / "samples.png", "64 samples, each drawn pixel by pixel in raster order. Look for "
                   "strokes that connect: every pixel only sees the ones before it, so a sample that "
                   "holds together shows the model has learnt long-range structure from local rules.")
    if "complete" not in model.traits.offers:
        return
    labels = ds.test_labels.tolist()
    index = [labels.index(c) for c in range(min(ds.n_classes, 6)) if c in labels][:6]
    rows = ds.shape[0] // 2
    cfg = CompleteConfig(checkpoint=str(t.checkpoint(name)), index=index, rows=rows, n=6,
                         out=str(d / "complete.png"), data=t.cfg.data, data_dir=t.cfg.data_dir, seed=t.seed,
                         device=t.device, quiet=True)
    if t.step(sec, "completions", complete, cfg) is not None:
        sec.figure(d / "complete.png", f"Completions: each row is a test digit, then its top {rows} rows "
                   "(the rest grey), then 6 completions drawn by the model. Look at the variety: where the "
                   "top half is ambiguous (a 1 or a 7?) the completions should disagree.")


# -- 2. GMM -------------------------------------------------------------------------------------
def _component_draws(gmm, m: int):
    """``m`` draws from every component: ``[K, m, D]``."""
    import torch

    with torch.no_grad():
        if gmm.likelihood == "bernoulli":
            probs = torch.sigmoid(gmm.x_logits)  # K × D
            return torch.bernoulli(probs[:, None].expand(-1, m, -1))
        loc, scale = gmm.means, gmm.log_scales.exp()  # K × D (diagonal covariance)
        noise = torch.randn(len(loc), m, loc.shape[-1], device=loc.device)  # K × m × D, beside the means
        return (loc[:, None] + scale[:, None] * noise).clamp(0, 1)


def mixture(sec, t):
    from ..plots.tour import gmm_story
    from ..recipes.config import replace_given
    from ..recipes.models import model_spec

    d, shape, name = t.out / sec.key, t.ds.shape, t.lead(sec.key)
    spec = model_spec(name)

    def gaussian():  # the same family, built by its registry entry with Gaussian components on grey levels
        grey = t.dequantized()
        g = spec.build(replace_given(spec.config(), n_components=10, likelihood="normal", covariance="diag",
                                     reg_covar=1e-3), grey).to(t.device)
        g.fit(grey.train[: t.n_train], seed=t.seed, progress=False)  # --train-size, as every family
        ll = float(g.log_prob(grey.test.to(g.device)).mean())
        means = g.means.detach().clamp(0, 1).reshape(-1, *shape)
        gmm_story(g.weights.detach(), means, _component_draws(g, 7).reshape(10, 7, *shape), d / "story_normal.png",
                  title="a Gaussian mixture on grey-level digits")
        t.numbers[sec.key]["gaussian_test_log_density"] = ll
        sec.figure(d / "story_normal.png", "The two-step story with Gaussians, fitted by EM to grey-level digits: "
                   "left the multinomial π (step 1), right each component's mean and 7 draws from its "
                   "diagonal Gaussian (step 2). Look at the draws: a diagonal Gaussian treats pixels as "
                   "independent given m, so they are speckled versions of the mean.")
        sec.paragraph(f"Exact test log density of this Gaussian mixture on dequantized grey levels: {ll:.2f} nats "
                      "per image (a density, not comparable with the probability masses of section 6).")

    t.step(sec, "gaussian mixture", gaussian)
    g = t.step(sec, "train mixture of Bernoullis", t.train, name)
    if g is not None:
        _bernoulli_figures(sec, t, name, g, d)
    _others(sec, t)


def _bernoulli_figures(sec, t, name, g, d) -> None:
    import torch

    from ..plots.tour import gmm_story

    ds, shape = t.ds, t.ds.shape
    ll = float(g.log_prob(ds.test.to(g.device)).mean())
    t.numbers[sec.key].update(test_log_likelihood=ll, estimator=g.traits.estimator, n_components=g.n_components,
                            n_params=g.n_params())
    gmm_story(g.weights.detach(), torch.sigmoid(g.x_logits.detach()).reshape(-1, *shape),
              _component_draws(g, 7).reshape(g.n_components, 7, *shape), d / "story_bernoulli.png",
              title="a mixture of Bernoullis on binarized digits")
    sec.figure(d / "story_bernoulli.png", "The same story on the black-and-white digits used in section 6: step "
               "2 is now a product of Bernoullis (the mean column shows each pixel's probability of being on). "
               "Look at how many components it takes to cover the ten digits and their styles: each "
               "component is one template, and a new style needs a new component.")
    sec.paragraph(f"Exact test log-likelihood of the mixture of Bernoullis ({g.n_components} components, EM): "
                  f"{ll:.2f} nats per image.")
    if t.step(sec, "samples", t.sample, name, d / "samples.png") is not None:
        sec.figure(d / "samples.png", "64 samples from the story run forwards (m, then x). Look for the noise: "
                   "the pixels are independent given m, so samples look like noisy templates, not strokes.")


# -- 3. VAE -------------------------------------------------------------------------------------
def _picture(t, cls, name: str, png, **fields):
    return cls(checkpoint=str(t.checkpoint(name)), out=str(png), data=t.data_config(), seed=t.seed,
               device=t.device, **fields)


def gmm_to_vae(sec, t):
    """The lecture's step from the GMM's discrete m to a continuous z: the section's own story (its samples,
    traversal and interpolation), then every other story registered for this step in its subsection, then the
    comparison with a story of the step that has codes but no guide (an auto-encoder), when there is one."""
    d, p, name = t.out / sec.key, t.profile, t.lead(sec.key)
    model = t.step(sec, f"train {name}", t.train, name, epochs=p["vae_epochs"], batch_size=p["batch"])
    if model is not None:
        _code_figures(sec, t, name, model, d)
    others = [m for m in _others(sec, t, epochs=p["vae_epochs"], batch_size=p["batch"],
                                 warmup_epochs=p["warmup_epochs"]) if m is not None]
    # nothing ties an auto-encoder's codes to a prior: it has codes, and no guide over them
    ae = next((m for m in others if not m.traits.guide and {"encode", "decode"} <= m.traits.offers), None)
    if model is not None and ae is not None:
        t.step(sec, "auto-encoder vs VAE", _why_vae, sec, t, model, ae, d)


def _code_figures(sec, t, name, model, d) -> None:
    from ..recipes.vae import InterpolateConfig, TraverseConfig, interpolate, traverse

    ds, p = t.ds, t.profile
    t.numbers[sec.key].update(z_dim=model.z_dim, n_params=model.n_params(), epochs=p["vae_epochs"])
    if t.step(sec, "samples", t.sample, name, d / "samples.png", mean=True) is not None:
        sec.figure(d / "samples.png", "64 samples: z ~ N(0, I), then the decoder's mean image. Look for "
                   "variety (all ten digits) and for blur: mean images average over the pixel noise.")
    # traverse picks the two most active code dimensions (largest average KL on held-out data)
    cfg = _picture(t, TraverseConfig, name, d / "traverse.png", dims=None, base="image:0", steps=9)
    res = t.step(sec, "traversal", traverse, cfg)
    if res is not None:
        active = t.numbers[sec.key]["traversed_dims"] = res.numbers["dims"]
        sec.figure(d / "traverse.png", f"Fix 8, vary 2: the code of test image 0 with {model.z_dim - 2} dimensions "
                   f"held fixed and dimensions {active[0]} (down) and {active[1]} (across) swept from -3 to 3. "
                   "Look for smooth change: one direction may turn the digit into another class, the other "
                   "change its slant or width.")
    labels = ds.test_labels.tolist()
    b = next((i for i, y in enumerate(labels) if y != labels[0]), 1)
    cfg = _picture(t, InterpolateConfig, name, d / "interpolate.png", src=0, dst=b, steps=10, slerp=True)
    if t.step(sec, "interpolation", interpolate, cfg) is not None:
        sec.figure(d / "interpolate.png", f"From test image 0 to test image {b}: first row the straight line "
                   "between their codes, second row the great circle. Every step should look like a "
                   "digit: the code space has no holes between the data.")


def _why_vae(sec, t, vae, ae, d) -> None:
    from ..metrics import train_classifier
    from ..recipes.code_space import PATH_ROWS, PRIOR_ROWS, code_space_figure, code_space_test

    ds, quick = t.ds, t.cfg.quick
    clf = train_classifier(ds, seed=t.seed)
    res = code_space_test(vae, ae, ds, clf, n_eval=300 if quick else 1000, pairs=30 if quick else 100, steps=8,
                          seed=t.seed)
    by = {r["name"]: r for r in res["rows"] + res["interpolation_rows"]}
    t.numbers[sec.key]["why_vae"] = {n: {k: r.get(k) for k in ("mean_confidence", "coverage", "worst_on_path")
                                       if k in r} for n, r in by.items()}
    code_space_figure(res, d / "why_vae.png", show=36, show_paths=6,
                      suptitle="the same codes, the same layer sizes: auto-encoder vs VAE")
    C = ds.n_classes
    rows = []
    for name in ("real test images", *PRIOR_ROWS, *PATH_ROWS):
        r = by[name]
        worst = f"{r['worst_on_path']:.3f}" if "worst_on_path" in r else "–"
        rows.append([name, f"{r['mean_confidence']:.3f}", f"{r['coverage'] * C:.0f}/{C}", worst])
    rows.append(["AE, z ~ fitted Gaussian, between two test digits", "= AE (same codes, same decoder)", "", ""])
    sec.heading("Why not a plain auto-encoder?")
    sec.figure(d / "why_vae.png", "An auto-encoder with the same layers and seed, trained to reconstruct only, "
               "against the VAE. Left: both decode the same codes z ~ N(0, I); right: both decode the points on "
               "the straight line between the codes of two real test digits (drawn at the ends). Nothing tied "
               "the auto-encoder's codes to N(0, I), so random codes land where it never put an image; the "
               "third row draws the auto-encoder's codes from a Gaussian fitted to its training codes instead. "
               "Look for non-digits: the lecture's claim is that the auto-encoder's code space has holes and "
               "the VAE's KL term fills it.")
    sec.table(["decoder mean images", "classifier confidence ↑", "classes found", "worst point on a path ↑"],
              rows, caption=f"{res['n_eval']} prior samples per row; {len(res['pairs'])} pairs of test digits of "
                            f"different classes, 8 points strictly between their codes; judged by a digit "
                            f"classifier trained on the real training images (test accuracy "
                            f"{clf.test_accuracy:.3f}). 'Worst point' is the lowest confidence on each path, "
                            "averaged over the paths: a hole shows as one non-digit on the way.")


# -- 4. CVAE ------------------------------------------------------------------------------------
def conditional(sec, t):
    d, p, name = t.out / sec.key, t.profile, t.lead(sec.key)
    model = t.step(sec, f"train {name}", t.train, name, epochs=p["cvae_epochs"], batch_size=p["batch"])
    if model is not None:
        _class_figures(sec, t, name, model, d)
    _others(sec, t, epochs=p["cvae_epochs"], batch_size=p["batch"])


def _class_figures(sec, t, name, model, d) -> None:
    import torch

    from ..plots import image_grid
    from ..recipes.vae import StyleTransferConfig, style_transfer

    t.numbers[sec.key].update(z_dim=model.z_dim, n_params=model.n_params())
    C = model.n_classes

    def rows():
        torch.manual_seed(t.seed)
        z = torch.randn(10, model.z_dim).repeat(C, 1)  # the same 10 codes in every row
        x = model.sample(10 * C, label=torch.arange(C).repeat_interleave(10), z=z, mean=True)
        image_grid(x.cpu(), d / "classes.png", nrow=10)
        sec.figure(d / "classes.png", "One row per class, the same 10 random codes in every column. Look down a "
                   "column: the class changes with the row while the style (slant, thickness, size) stays, "
                   "because the label carries the class and z only the style.")

    t.step(sec, "one row per class", rows)
    if "transfer" not in model.traits.offers:
        return
    cfg = _picture(t, StyleTransferConfig, name, d / "style_transfer.png", index=[0, 1, 2, 3, 4])
    if t.step(sec, "style transfer", style_transfer, cfg) is not None:
        sec.figure(d / "style_transfer.png", "Style transfer: each row starts with a test digit; its code "
                   "q(z | x, y) is then decoded with every label 0–9. Look for the original's style carried "
                   "over to all ten digits.")



# -- 6. comparison ------------------------------------------------------------------------------
def score_rows(sec, t, names=None, quality: dict | None = None) -> tuple[list[dict], dict, dict]:
    """Every trained model of ``names`` (default: every family in the tour,
    :func:`~probgen.report.families.tour_families`) scored on the test set by the one policy
    (:func:`probgen.recipes.compare.score_model`): rows (exact estimators first, then the bounds, then the
    weak ones: ``traits.estimator`` in the order of :data:`probgen.story.ESTIMATORS`), pointwise values,
    the loaded models; into ``quality`` the :class:`~probgen.diagnostics.GuideQuality` of each score's own
    importance weights and k̂ (nothing is drawn or fitted twice)."""
    import time

    from ..diagnostics import quality_from_weights
    from ..evaluate import summarize
    from ..recipes.compare import score_model
    from ..story import ESTIMATORS
    from .pictures import STORY_NAME

    rows, pointwise, loaded = [], {}, {}
    # the families trained on the tour's data share its table; a density of grey levels has its own section
    names = [n for n in tour_families() if not continuous(n)] if names is None else names
    targets = [(name, lambda name=name: t.load(name)) for name in names if t.has(name)]
    story = t.numbers.get("story", {})
    if story.get("checkpoint"):  # the user's program (tour --story): loaded with the code it names
        from ..recipes.story import load_story_checkpoint

        targets.append((STORY_NAME, lambda: load_story_checkpoint(story["checkpoint"], allow_code=True,
                                                                  story=story["spec"])))
    for name, load in targets:

        def one(name=name, load=load):
            model = loaded[name] = load()
            seed_everything(t.seed)
            t0 = time.perf_counter()
            row = score_model(model, t.ds, num_samples=t.profile["iwae_k"], weights=True)
            values, lw, khat = row.pop("values"), row.pop("log_weights"), row.pop("khat")
            if quality is not None and lw is not None:
                quality[name] = quality_from_weights(lw, khat=khat)
            res = summarize(values)
            pointwise[name] = values.double().numpy()
            rows.append({"name": name, "test_log_likelihood": res.mean, "stderr": res.stderr, **row,
                         "n_params": int(model.n_params()), "n_test": res.n,
                         "eval_seconds": round(time.perf_counter() - t0, 2)})

        t.step(sec, f"score {name}", one)
    rank = {name: ESTIMATORS.index(model.traits.estimator) for name, model in loaded.items()}
    rows.sort(key=lambda r: rank.get(r["name"], len(ESTIMATORS)))  # stable: registry order within an estimator
    return rows, pointwise, dict(sorted(loaded.items(), key=lambda kv: rank[kv[0]]))


def compare(sec, t):
    from .. import diagnostics
    from ..plots.tour import loglik_bars

    d, p, ds = t.out / sec.key, t.profile, t.ds
    scored = {}  # k̂ of the scores' own weights (the stories scored by IWAE with their guide)
    rows, pointwise, loaded = score_rows(sec, t, quality=scored)
    if not rows:
        sec.error("no model was trained: nothing to compare")
        return
    elpd = None
    if len(pointwise) > 1:
        elpd = t.step(sec, "ArviZ elpd comparison", diagnostics.compare_pointwise, pointwise,
                      figure=d / "elpd_compare.png")
    khat = {}

    def guide_k(name):  # a conditional score is a marginal over labels: its guide q(z | x, y) is judged here
        seed_everything(t.seed)
        khat[name] = diagnostics.guide_quality(loaded[name], ds.test, p["iwae_k"], y=ds.test_labels)

    for name, model in loaded.items():
        if name in scored:
            khat[name] = scored[name]
        elif model.traits.guide and model.traits.labels:
            t.step(sec, f"guide k-hat {name}", guide_k, name)
    t.numbers["compare"]["models"] = rows
    if elpd:
        t.numbers["compare"]["elpd"] = {k: v for k, v in elpd.items() if k != "text"}
    t.numbers["compare"]["guide_khat"] = {n: q.summary() for n, q in khat.items()}
    _table(sec, t, rows, elpd, khat)
    t.step(sec, "bar chart", loglik_bars, rows, d / "loglik.png")
    sec.figure(d / "loglik.png", "The table as bars (±2 s.e.). Look first at the estimator: compare exact with "
               "exact; an IWAE bar could only grow with more samples K, and the Parzen bar says little.")
    if elpd:
        sec.figure(d / "elpd_compare.png", "ArviZ-style comparison: open circles are each model's elpd ± se, "
                   "grey triangles the difference to the best ± dse. Differences are much surer than the "
                   "elpds themselves, because hard test digits are hard for every model.")
        sec.pre(elpd.get("text", ""))
    if khat:
        _khat_figure(sec, t, khat, d)


def _table(sec, t, rows, elpd, khat) -> None:
    header = ["model", "parameters", "test log-lik (nats/image)", "estimator", "K", "elpd diff ± dse",
              "stacking weight", "k̂ > 0.7 (guide)"]
    table, warnings = [], []
    for r in rows:
        m = (elpd or {}).get("models", {}).get(r["name"], {})
        diff = "best" if m.get("rank") == 0 else (f"{m['elpd_diff']:.1f} ± {m['dse']:.1f}" if m else "–")
        q = khat.get(r["name"])
        kbad = f"{q.counts()['bad']}/{len(q.khat)}" if q is not None else (
            f"{r['khat_share']:.0%}" if r.get("khat_share") is not None else "–")
        table.append([r["name"], f"{r['n_params']:,}", f"{r['test_log_likelihood']:.2f} ± {r['stderr']:.2f}",
                      r["estimator"], _fmt(r["num_samples"]), diff, _fmt(m.get("weight")) if m else "–", kbad])
        if r.get("warning"):
            warnings.append(f"{r['name']}: {r['warning']}")
    sec.table(header, table, caption=f"{len(t.ds.test)} binarized test digits, the same for every row; ± is one "
              "standard error over test images. elpd diff is the difference in summed log-likelihood to the "
              "best model with its standard error from the pointwise differences (ArviZ-style comparison); "
              "k̂ counts test points whose importance weights have a heavy tail (> 0.7: that point's IWAE "
              "number is unreliable). The CVAE is scored as log Σ_y p(y) p(x | y), not given the label.")
    if warnings:
        sec.note("; ".join(warnings))


def _khat_figure(sec, t, khat, d) -> None:
    import numpy as np

    from ..plots.diagnostics import plot_khat

    first, *rest = khat
    plot_khat(khat[first].khat, d / "khat.png", compare={n: khat[n].khat for n in rest},
              title=f"Pareto k̂ of the guides' importance weights, K={khat[first].num_samples} (guide = {first})")
    lines = [f"{n}: k̂ median {np.median(np.where(np.isfinite(q.khat), q.khat, -1)):.2f}, "
             f"{q.counts()['bad']} of {len(q.khat)} points > 0.7, ESS median {np.median(q.ess):.0f}/"
             f"{q.num_samples}, IWAE − ELBO gap {q.gap.mean():.2f} nats" for n, q in khat.items()]
    sec.figure(d / "khat.png", "Pareto k̂ per test point for each model with a guide. Points above the "
               "dashed 0.7 line have importance weights too heavy-tailed for their IWAE number to be "
               "trusted; many such points mean that model is under-rated in the table.")
    sec.pre("\n".join(lines))


# -- 7. text ------------------------------------------------------------------------------------
#: the longest line (in tokens) the text section trains on; the tour checks the corpus with it up front
TEXT_MAX_LEN = 40


def text(sec, t):
    from ..data import load_text
    from ..recipes.config import DataConfig, replace_given
    from ..recipes.models import model_spec
    from ..recipes.text import InterpolateTextConfig, PoemConfig, interpolate_text, poem
    from ..recipes.train import train_model

    p, cfg, name = t.profile, t.cfg, t.lead(sec.key)
    corpus = load_text(cfg.text, data_dir=cfg.data_dir, max_len=TEXT_MAX_LEN)  # checked before the first section
    params = replace_given(model_spec(name).config(), text=cfg.text, epochs=p["text_epochs"], hidden=p["text_hidden"],
                           embed_dim=p["text_embed"], z_dim=16, eval_samples=20, eval_max=200, val_max=200,
                           max_lines=p["text_lines"] or None, threads=cfg.threads)
    ckpt = t.checkpoint(name)

    def fit():
        seed_everything(t.seed)
        return train_model(name, params, DataConfig(data_dir=cfg.data_dir, seed=t.seed), t.run_cfg,
                           path=ckpt)

    res = t.step(sec, f"train {name}", fit)
    if res is None:
        return
    test = t.load(name).checkpoint_extra.get("test", {})
    t.numbers[sec.key].update(corpus=res.dataset.describe(), test=test, n_params=res.model.n_params())
    sec.paragraph(f"Trained on {res.dataset.describe()} for {p['text_epochs']} epoch(s)"
                  + (f" on {p['text_lines']} lines" if p["text_lines"] else "") + ". "
                  + (f"Test: KL {test['kl']:.2f} nats per line (how much the code is used), "
                     f"−ELBO {-test['elbo']:.2f} nats per line" if "kl" in test else "")
                  + (f", perplexity {test['ppl']:.1f} ({test['estimator']})." if "ppl" in test else "."))
    text_collapse(sec, t, t.load(name), res.dataset.test[:200])  # is the code in use? (the encoder section's numbers)
    poems = t.step(sec, "poems", poem, PoemConfig(checkpoint=str(ckpt), n=3, lines=4, seed=t.seed, device=t.device))
    if poems is not None:
        sec.heading("Three poems of four lines")
        sec.pre(poems.text().strip())
        sec.paragraph("Each poem's four codes take a correlated random walk, so neighbouring lines should share "
                      "words or a theme. Look for grammar within a line (the decoder) and for lines that differ "
                      "from each other (the code): lines that all look alike mean the KL collapsed to zero.")
    sentences = corpus.sentences("test")
    if len(sentences) >= 2:
        cfg_i = InterpolateTextConfig(checkpoint=str(ckpt), first=sentences[0], second=sentences[1], steps=5,
                                      seed=t.seed, device=t.device)
        lines = t.step(sec, "interpolation", interpolate_text, cfg_i)
        if lines is not None:
            sec.heading("From one test line to another")
            note = f"note: not in the vocabulary (read as <unk>): {' '.join(lines.unknown[:10])}\n"
            sec.pre(((note if lines.unknown else "") + lines.text()).strip())
            sec.paragraph("The codes on the straight line between two test lines, decoded greedily. Look for "
                          "the gradual change: a smooth code space gives grammatical lines all the way.")
