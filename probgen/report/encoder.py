"""The tour's section "Is the encoder right?": simulation-based calibration and collapse of every trained
family with a guide (:func:`probgen.diagnostics.sbc`, :func:`probgen.diagnostics.collapse`, through the
diagnose recipe's :func:`~probgen.recipes.diagnose.encoder_checks`), the figures of the section's lead VAE,
and the sentence VAE's collapse numbers for its own section (:func:`text_collapse`).

Which families apply is read from their traits (``traits.guide``: a real guide over per-example codes), never
from a name; captions are built from the data set, the test-set size and the families actually present.
"""
from __future__ import annotations

__all__ = ["encoder", "text_collapse", "SBC_SIZES"]

#: (simulations, draws of q(z|x) per simulation) of the tour's SBC: quick, full
SBC_SIZES = {True: (300, 49), False: (1000, 99)}


def _checks(t, name, out):
    """``(model, summary, lines)`` of one family's encoder checks on the tour's test set (its own data: grey
    levels for a family registered for continuous data), or ``None`` when it has no guide."""
    from ..recipes.diagnose import DiagnoseConfig, encoder_checks
    from .families import continuous

    model = t.load(name)
    if not model.traits.guide:
        return None
    ds = t.dequantized() if continuous(name) else t.ds
    y = ds.test_labels if model.traits.labels else None
    sims, draws = SBC_SIZES[bool(t.cfg.quick)]
    out.mkdir(parents=True, exist_ok=True)
    summary, lines = {}, []
    encoder_checks(model, ds.test, DiagnoseConfig(sbc=sims, sbc_draws=draws), out, summary, lines, y=y)
    return model, summary, lines


def encoder(sec, t):
    """SBC and collapse of each trained family with a guide: one table, the lead VAE's two figures."""
    from ..recipes.config import seed_everything
    from .families import tour_families

    d = t.out / sec.key
    rows, lead = [], None
    for name in tour_families():
        if not t.has(name):  # trained by this tour
            continue
        seed_everything(t.seed)
        res = t.step(sec, f"encoder checks {name}", _checks, t, name, d / name)
        if res is None:
            continue
        model, s, _ = res
        cal, col = s.get("calibration", {}), s["collapse"]
        t.numbers[sec.key][name] = {"calibration": cal, "collapse": col}
        verdict = cal.get("shape", "not run")
        worst = min((dim["p_value"] for dim in cal.get("dims", [])), default=None)
        mi = col["mutual_information"]["value"]
        rows.append([name, verdict, "–" if worst is None else f"{worst:.2g}", f"{col['active_units']}/{col['dims']}",
                     f"{col['kl_total']:.2f}", "–" if mi is None else f"{mi:.2f}"])
        lead = lead or (name if "sample_mean" in model.traits.offers and (d / name / "sbc.png").exists() else None)
    if not rows:
        sec.note("No family with a guide was trained in this tour: nothing to check.")
        return
    n_test = len(t.ds.test)
    sims, draws = SBC_SIZES[bool(t.cfg.quick)]
    sec.table(["model", "SBC verdict", "worst p", "active units", "KL (nats)", "I(x; z) (nats)"], rows,
              caption=f"Each model with a guide on the {n_test} test images of {t.ds.name}: SBC with {sims} "
                      f"simulations and {draws} draws of q(z|x) each (χ² per latent dimension, Bonferroni 0.01); "
                      "active units have Var_x E_q[z_d|x] > 0.01; KL = E_x KL(q(z|x) ‖ p(z)); I(x; z) is the "
                      f"minibatch estimate over the test images (at most log {n_test}).")
    if lead is None:
        return
    sec.figure(d / lead / "sbc.png", f"{lead}: where the true code falls among {draws} draws of q(z|x), for "
               f"{sims} codes drawn from the prior and images drawn from the decoder, one panel per latent "
               "dimension (at most eight: those with the smallest p). Look for flat histograms inside the grey "
               "band: a hump (∩) means the encoder is too wide, a trough (∪) too narrow, a slope that it sits "
               "off the truth. The top panel shows every dimension's rank ECDF minus the uniform's; a line "
               "leaving ArviZ's simultaneous band is miscalibrated.")
    sec.figure(d / lead / "collapse.png", f"{lead} on the {n_test} test images: how much each code dimension's "
               "posterior mean moves from image to image (red below the 0.01 line: an inactive, collapsed unit) "
               "and the KL each dimension pays. A dimension with KL ≈ 0 carries nothing about the image.")


def text_collapse(sec, t, model, test) -> None:
    """The sentence VAE's collapse numbers (active units, KL per line, I(x; z)) under its section."""
    from .. import diagnostics as D

    if not model.traits.guide:
        return
    c = t.step(sec, "collapse", D.collapse, model, test)
    if c is None:
        return
    t.numbers[sec.key]["collapse"] = c.summary()
    sec.paragraph(f"Posterior collapse on {len(test)} test lines: {c.verdict()}. Collapse is the classic failure "
                  "of the sentence VAE: a decoder strong enough to write a line alone lets q(z | x) fall back "
                  "to the prior; free bits and word dropout are there to prevent it.")
