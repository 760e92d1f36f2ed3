"""Sections of the tour about pictures beyond one family (:mod:`probgen.report.tour`): the Frey faces
(the lecture's "fix all code dimensions but two" picture), the problems of the VAE (blur, imitation), and
the user's own story (``probgen tour --story FILE.py:NAME``).
Same protocol as :mod:`probgen.report.sections`: ``name(sec, t)``, every step inside ``t.step``."""
from __future__ import annotations

__all__ = ["faces", "problems", "story", "FACE_RECIPE", "check_story_option", "with_story_section", "STORY_NAME"]

#: the documented Frey-face recipe (docs/tour.md): grey levels kept, each pixel's grey level the target of a
#: Bernoulli cross-entropy (a Normal with a learned scale shrinks the scale and decodes noise off the data),
#: a 2-D code so that the whole code space is one picture, small batches (1573 training faces)
FACE_RECIPE = dict(likelihood="bernoulli", z_dim=2, hidden="200", batch_size=32, lr=1e-3)


#: the section of the digits page whose own family (a VAE) the faces page and the problems section show
CODE_STOP = "gmm-to-vae"
#: the sections whose own families' draws the problems section sets beside the VAE's
SHARP_STOPS = ("pixels", "adversarial")


def faces(sec, t):
    """Frey faces: a VAE with a 2-D code; traverse both dims (pose and expression), the map, samples."""
    from ..recipes.vae import LatentMapConfig, TraverseConfig, latent_map, traverse

    d, p, name = t.out / sec.key, t.profile, t.lead(CODE_STOP)
    model = t.step(sec, f"train {name}", t.train, name, epochs=p["face_epochs"], patience=p["face_epochs"],
                   **FACE_RECIPE)
    if model is None:
        return
    t.numbers[sec.key].update(z_dim=model.z_dim, n_params=model.n_params(), epochs=p["face_epochs"],
                              recipe=FACE_RECIPE)
    sec.paragraph("Recipe: probgen train vae --data frey-face --no-binarize --likelihood bernoulli --z-dim 2 "
                  f"--hidden 200 --batch-size 32 --epochs {p['face_epochs']}. The grey levels are kept and each "
                  "pixel's grey level is the target of a Bernoulli cross-entropy; a Normal likelihood with a "
                  "learned scale shrinks its scale on the training faces and decodes noise elsewhere.")
    cfg = TraverseConfig(checkpoint=str(t.checkpoint(name)), out=str(d / "traverse.png"), data=t.data_config(),
                         seed=t.seed, base="zero", span=2.0, steps=p["face_steps"], device=t.device)
    res = t.step(sec, "traversal", traverse, cfg)
    if res is not None:
        i, j = res.numbers["dims"]
        t.numbers[sec.key]["traverse"] = {k: v for k, v in res.numbers.items() if k != "label"}
        sec.figure(d / "traverse.png", f"Fix all code dimensions but two, and sweep those two from -2 to 2: "
                   f"dimension {i} down, dimension {j} across. Look for the head turning along one axis and the "
                   "expression changing along the other (which is which depends on the seed).")
        sec.pre(res.lines[0])
    cfg = LatentMapConfig(checkpoint=str(t.checkpoint(name)), out=str(d / "latent_map.png"),
                          data=t.data_config(), seed=t.seed, span=2.5, steps=p["face_steps"] + 3, device=t.device)
    if t.step(sec, "latent map", latent_map, cfg) is not None:
        sec.figure(d / "latent_map_scatter.png", "Where the test faces sit in the 2-D code space (posterior "
                   "means): the dashed square is the decoded map below.")
        sec.figure(d / "latent_map.png", "The decoded map over [-2.5, 2.5]²: every point of the code space is a "
                   "face, and neighbouring points are similar faces.")
    if t.step(sec, "samples", t.sample, name, d / "samples.png", mean=True) is not None:
        sec.figure(d / "samples.png", "64 faces from the prior: z ~ N(0, I), decoder mean images.")


def problems(sec, t):
    """Blur and imitation of the tour's VAE, beside the PixelCNN's and the GAN's draws when they exist."""
    from ..recipes.config import RunConfig
    from ..recipes.problems import ProblemsConfig, problems as run

    d, name = t.out / sec.key, t.lead(CODE_STOP)
    if not t.has(name):
        sec.note("No VAE was trained in this tour: nothing to show.")
        return
    leads = [t.families(stop)[:1] for stop in SHARP_STOPS]
    others = [str(t.checkpoint(n)) for lead in leads for n in lead if t.has(n)]  # this tour's only
    cfg = ProblemsConfig(checkpoint=str(t.checkpoint(name)), compare=others, n=36, n_eval=t.profile["eval_n"],
                         pairs=10, data=t.data_config(),
                         run=RunConfig(out=str(d), seed=t.seed, device=t.device, quiet=True))
    res = t.step(sec, "blur and imitation", run, cfg)
    if res is None:
        return
    t.numbers[sec.key].update(res.numbers)
    sharp = res.numbers["sharpness"]
    real = sharp.get("real test images", float("nan"))
    sec.heading("Blur")
    # the caption names the panels that are there: the other families' draws only when they were trained
    others = [k for k in list(sharp)[2:] if k != "real test images"]  # after the VAE's means and draws
    sec.figure(d / "blur.png", f"{cfg.n} images per panel: the VAE's decoder means and its own draws"
               + (f", the draws of {', '.join(others)}" if others else "") + f" and real {t.ds.name} test images. "
               f"The mean images are smooth averages (sharpness {min(sharp.values()):.3f} at the lowest, real "
               f"images {real:.3f}); drawing every pixel independently from p(x | z) does not make them sharp, it "
               "adds salt-and-pepper noise (sharpness above the real images')."
               + (" A model that draws each pixel given the others, or one trained against a judge of realism, "
                  "draws crisper strokes: compare their sharpness with the real images'." if others else ""))
    sec.pre("\n".join(res.lines[1:-3]))
    n = res.numbers["nearest_train_distance"]
    sec.heading("Imitate or create?")
    sec.figure(d / "nearest.png", "Each generated image (decoder means) above its nearest training image, with "
               "the Euclidean distance. A model that memorised its data would show copies here.")
    sec.figure(d / "distances.png", f"Distance to the nearest training image: generated images (median "
               f"{n['generated_median']:.2f}) against held-out real images the model never saw (median "
               f"{n['held_out_median']:.2f}). {100 * n['generated_closer_than_that']:.1f}% of generated images are "
               "closer to a training image than 95% of the held-out ones: a copying model would pile up on the "
               "left; a blurred mean image lies between training images, so it is no copy, but also no new "
               "real image.")


# -- your own story -----------------------------------------------------------------------------
#: the comparison row of the user's story (``t.numbers["story"]`` holds its checkpoint)
STORY_NAME = "your story"


def check_story_option(spec: str, story_args) -> None:
    """``--story`` / ``--story-args`` checked before anything trains: imports the file (**runs its code**)."""
    from ..recipes.story import load_story_program, parse_story_args

    load_story_program(spec)
    parse_story_args(story_args)


def with_story_section(sections: dict, spec: str) -> dict:
    """``sections`` with ``"story"`` inserted just before ``"compare"`` (at the end when there is none)."""
    items = list(sections.items())
    at = next((i for i, (key, _) in enumerate(items) if key == "compare"), len(items))
    return dict(items[:at] + [("story", f"Your own story: {spec}")] + items[at:])


def story(sec, t):
    """Train the user's program on the tour's data (as ``probgen train --story``), draw its samples; the
    comparison section scores it (:func:`probgen.report.sections.score_rows`)."""
    from ..recipes.config import RunConfig
    from ..recipes.story import StoryConfig, user_story
    from ..recipes.train import SampleConfig, sample

    d, cfg = t.out / "story", t.cfg
    run = RunConfig(out=str(d), seed=t.seed, device=t.device, quiet=True)
    res = t.step(sec, "train your story", user_story, StoryConfig(
        story=cfg.story, story_args=cfg.story_args, data=t.data_config(), num_samples=0, run=run,
        epochs=t.profile["vae_epochs"], batch_size=t.profile["batch"], train_size=cfg.train_size,
        threads=cfg.threads))
    if res is None:
        return
    model = res.model.eval()
    x = res.dataset.test[:4].to(model.device)  # the objective the trainer picked: the story's check, asked again
    y = res.dataset.test_labels[:4].to(model.device) if model.traits.labels else None
    elbo = model.check(x, y).elbo
    t.numbers[sec.key].update(spec=cfg.story, name=STORY_NAME, kind=model.kind, checkpoint=str(res.path),
                              n_params=int(model.n_params()), fit_seconds=round(res.seconds, 2), elbo=elbo)
    sec.paragraph(f"{cfg.story} trained on {res.dataset.describe()} in {res.seconds:.1f} s "
                  f"({model.n_params():,} parameters, objective {elbo}, at most {t.profile['vae_epochs']} "
                  f"epochs with early stopping); checkpoint {res.path.name} in story/ (load it with probgen "
                  f"sample {res.path.name} --story {cfg.story}). Its test log-likelihood is the row "
                  f"'{STORY_NAME}' of the comparison table.")

    cfg_s = SampleConfig(checkpoint=str(res.path), n=64, out=str(d / "samples.png"), story=cfg.story, seed=t.seed,
                         device=t.device)
    if t.step(sec, "samples", sample, cfg_s) is not None:  # as `probgen sample CKPT --story FILE.py:NAME`
        sec.figure(d / "samples.png", "64 samples of your story run forwards (latent sites from their priors; "
                   "the mean of the observed site where the story has one). Compare them with the VAE's samples "
                   "in section 3.")
