"""Section 5 of the tour (:mod:`probgen.report.tour`): the implicit model, ``adversarial(sec, t)``, for the
family registered there (``register_model(..., tour="adversarial")``: the GAN).

The GAN trains on the grey levels of the tour's images, as ``probgen train gan`` does by default,
for the profile's ``gan_epochs`` (the full profile: the family's default 100 epochs, the setting
that meets issue 18's target; ``--quick``: a few epochs). A digit classifier trained on real grey
images judges its samples against issue 18's targets for samples (:data:`probgen.metrics.QUALITY_TARGETS`);
the families of the earlier sections are judged beside it by a classifier trained on the
binarized images, the pixels they were trained on.
"""
from __future__ import annotations

__all__ = ["adversarial", "check_targets", "EARLIER"]

from ..metrics import QUALITY_TARGETS, check_targets

#: the sections whose families are judged beside it (binarized, unconditional: samples need no label)
EARLIER = ("pixels", "mixture", "gmm-to-vae")


def _toy(sec, t, d, p) -> None:
    from ..recipes.config import RunConfig
    from ..recipes.gan import GanToyConfig, gan_toy

    toy = d / "toy"
    res = t.step(sec, "1-D toy", gan_toy, GanToyConfig(steps=p["toy_steps"], snapshots=5,
                                                       run=RunConfig(out=str(toy), seed=t.seed, device=t.device,
                                                                     quiet=True)))
    if res is None:
        return
    t.numbers[sec.key]["toy"] = {k: res.summary.get(k) for k in ("final_wasserstein", "wasserstein_floor",
                                                               "mode_mass", "all_modes_covered", "steps")}
    sec.figure(toy / "toy.png", "The lecture's 1-D picture at several training steps: the data density "
               "(shaded blue), the generator's histogram and density (green) and the discriminator D(x) "
               "(red dashed, right axis). Look at D: it is "
               "high where data outweighs samples, and the generator moves its mass uphill on D until D "
               "is flat at ½.")
    if (toy / "toy.gif").exists():
        sec.figure(toy / "toy.gif", "The same, animated.")
    sec.paragraph(f"After {p['toy_steps']} steps the 1-D Wasserstein distance to the data is "
                  f"{res.final_wasserstein:.3f} (two data samples differ by {res.wasserstein_floor:.3f}); "
                  f"mass per mode {', '.join(f'{m:.2f}' for m in res.mode_mass)}.")


def adversarial(sec, t):
    from ..recipes.config import RunConfig
    from ..recipes.gan import JudgeConfig, WalkConfig, judge, walk
    from ..recipes.models import model_spec

    d, p, name = t.out / sec.key, t.profile, t.lead(sec.key)
    _toy(sec, t, d, p)
    grey = t.step(sec, "grey-level data", t.grey)
    if grey is None:
        return
    pixels = "binarized" if grey.binarized else "grey-level"
    default = model_spec(name).config().epochs
    setting = (f"{pixels} images, {p['gan_epochs']} epochs"
               + (" (the defaults of probgen train gan)" if p["gan_epochs"] == default else
                  f" (a --quick run; probgen train gan and the full tour train {default})"))
    model = t.step(sec, f"train {name}", t.train, name, data=grey, epochs=p["gan_epochs"], arch=p["gan_arch"],
                   grid_every=0, no_monitor=True)
    if model is None:
        return
    t.numbers[sec.key]["setting"] = {"binarized": bool(grey.binarized), "epochs": p["gan_epochs"]}
    if (t.models / f"{name}_samples.png").exists():  # written by the family's fit in the models folder
        sec.figure(t.models / f"{name}_samples.png", f"64 GAN samples G(z), trained on the {setting}. Look for "
                   "sharp strokes (no blur: nothing averages pixels) and for missing classes (mode collapse).")
    if not grey.binarized and t.binarize:
        sec.paragraph("Like probgen train gan, the GAN learns the grey levels: on the binarized built-in 8×8 digits "
                      "(40 epochs) it missed the targets below (mean confidence 0.80, 7 classes, largest class 25 %; "
                      "docs/gan.md). "
                      "In section 6 its grey samples serve as pixel probabilities of the Parzen window's Bernoulli "
                      "kernel, so that its row is a log mass on the same binarized test digits as the others'.")
    cfg = WalkConfig(checkpoint=str(t.checkpoint(name)), n=5, steps=8, out=str(d / "walk.png"), seed=t.seed,
                     device=t.device)
    if t.step(sec, "code-space walk", walk, cfg) is not None:
        sec.figure(d / "walk.png", "Walks between random codes, along straight lines and great circles. Look "
                   "for smooth changes between digits; the middle of a straight line has a smaller norm than "
                   "typical codes, which can show as fainter images.")
    _judge(sec, t, d, p, name, setting, pixels, judge, JudgeConfig, RunConfig)


def _judge(sec, t, d, p, name, setting, pixels, judge, JudgeConfig, RunConfig) -> None:
    """The GAN judged on its own pixels against the targets; the binarized families on theirs."""
    others = [str(t.checkpoint(n)) for stop in EARLIER for n in t.families(stop) if t.has(n)]
    runs = [("eval", [str(t.checkpoint(name))], False, pixels)]
    if others:
        runs.append(("eval-binarized", others, True, "binarized"))
    rows, judged = [], {}
    for key, checkpoints, binarize, what in runs:
        cfg = JudgeConfig(checkpoints=checkpoints, n=p["eval_n"], data=t.data_config(binarize=binarize),
                          run=RunConfig(out=str(d / key), seed=t.seed, device=t.device, quiet=True))
        ev = judged[key] = t.step(sec, f"judge ({what})", judge, cfg)
        if ev is None:
            continue
        rows.append([f"real test images ({what})", what, f"{ev.classifier_test_accuracy:.3f}", "–", "–", "–",
                     f"{ev.frechet_floor:.2f} (val vs test)"])
        rows += [[judged_name, what, "", f"{r['classes_found']}/{t.ds.n_classes}",
                  f"{100 * r['max_class_fraction']:.1f} %", f"{r['mean_confidence']:.3f}",
                  f"{r['frechet_classifier_features']:.2f}"]
                 for judged_name, r in ev.models.items()]
    ev = judged.get("eval")
    if ev is not None:
        t.numbers[sec.key]["quality"] = ev.summary
    targets = QUALITY_TARGETS["samples"]
    if ev is not None:
        c = t.numbers[sec.key]["targets"] = check_targets(ev.models[name], t.ds.n_classes)
        yes = {True: "yes", False: "no"}
        sec.heading("The targets")
        sec.table(["", "GAN", "target", "met?"],
                  [["mean confidence", f"{c['mean_confidence']['value']:.3f}", f"≥ {targets['mean_confidence']}",
                    yes[c["mean_confidence"]["met"]]],
                   ["classes found", str(c["classes_found"]["value"]), str(t.ds.n_classes),
                    yes[c["classes_found"]["met"]]],
                   ["largest class share", f"{100 * c['max_class_fraction']['value']:.1f} %",
                    f"≤ {100 * targets['max_class_fraction']:.0f} %",
                    yes[c["max_class_fraction"]["met"]]]],
                  caption=f"The GAN trained on the {setting}; {p['eval_n']} samples judged by a digit classifier "
                          f"trained on the real {pixels} training images (never the model's own). "
                          + ("Every target is met." if c["met"] else "Not every target is met"
                             + (" (a --quick run is too short for them)." if t.cfg.quick else ".")))
    if judged.get("eval-binarized") is not None:
        t.numbers[sec.key]["quality_binarized"] = judged["eval-binarized"].summary
    if not rows:
        return
    sec.heading("Judged by a classifier")
    sec.table(["model", "judged on", "judge's test accuracy", "classes found", "largest class", "mean confidence",
               "Fréchet distance ↓"], rows,
              caption=f"{p['eval_n']} samples per model. Each model is judged by a digit classifier trained on "
                      "real training images with the pixels it was trained on. The Fréchet distance is measured "
                      "in that classifier's features: the FID recipe, but NOT Inception FID, comparable only "
                      "between rows judged on the same pixels.")
    for key, _, _, what in runs:
        if judged.get(key) is not None:
            sec.figure(d / key / "class_histograms.png", f"Which classes the samples are recognised as ({what} "
                       "judge). Look for coverage: a collapsed GAN piles its samples into a few classes; the "
                       "likelihood models are pushed to cover every training image and rarely miss a class.")
