"""``probgen tour``: the whole lecture in one command, as one HTML page a person reads.

Trains every family on the built-in digits (offline), draws each family's pictures with its
own commands (run in-process, ``probgen.cli.main([...])``, into sub-folders of ``--out``),
scores all of them on the same test set, and writes ``OUT/report.html`` (one self-contained
page: images embedded, inline CSS, no scripts) and ``OUT/report.json`` (the numbers).

A section whose family fails says so on the page (the one-line error) and the tour goes on.
Everything the sub-commands print goes to ``OUT/tour.log``.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import time
from pathlib import Path

from . import common
from .common import CLIError, add_run_args

__all__ = ["register", "cmd_tour", "SECTIONS", "PROFILES"]

#: section key -> heading on the page (the tests look for these)
SECTIONS = {
    "pixel": "1. Autoregressive pixel model",
    "gmm": "2. Gaussian mixture: the two-step story",
    "vae": "3. VAE: a GMM with a distributed representation",
    "cvae": "4. Conditional VAE",
    "gan": "5. GAN",
    "compare": "6. Comparison on the same test set",
    "text": "7. The VAE writes lines",
}

#: sizes of the runs: ``quick`` ≤ 1 minute, ``full`` ≤ 5 minutes on 2 CPU cores (see docs/tour.md)
PROFILES = {
    "quick": dict(vae_epochs=30, ae_epochs=30, cvae_epochs=30, mvae_warmup=3, mvae_epochs=10, batch=256,
                  pixel_epochs=2, pixel_channels=16, pixel_layers=3, pixel_batch=128, pixelrnn=False,
                  gan_epochs=5, gan_arch="dcgan", toy_steps=300, eval_n=300,
                  text_epochs=1, text_lines=300, text_hidden=64, text_embed=32,
                  iwae_k=50, khat_k=100),
    "full": dict(vae_epochs=150, ae_epochs=150, cvae_epochs=150, mvae_warmup=10, mvae_epochs=100, batch=128,
                 pixel_epochs=10, pixel_channels=32, pixel_layers=4, pixel_batch=64, pixelrnn=True,
                 gan_epochs=40, gan_arch="dcgan", toy_steps=2000, eval_n=1000,
                 text_epochs=6, text_lines=None, text_hidden=128, text_embed=64,
                 iwae_k=1000, khat_k=1000),
}

INTRO = {
    "pixel": "No latent variable at all: a Gated PixelCNN writes an image one pixel at a time, each pixel "
             "given all the pixels above and to the left, p(x) = Π p(x_i | x_<i). Because every "
             "conditional is a plain Bernoulli, the log-likelihood is exact.",
    "gmm": "The simplest latent-variable story: first pick a component m from a multinomial, then draw "
           "the image from that component's Gaussian (for black-and-white pixels, a product of "
           "Bernoullis). m is a discrete Pyro site that is summed out exactly by enumeration, so this "
           "log-likelihood is exact too.",
    "vae": "Replace the discrete m by a continuous code z ~ N(0, I) and the table of component means by "
           "a decoder network: every image is now described by 10 numbers at once (a distributed "
           "representation). z can no longer be summed out, so an encoder q(z | x) is trained alongside "
           "by SVI, and its log-likelihood is an importance-weighted (IWAE) lower bound.",
    "cvae": "Give the VAE the label as well: p(x | z, y). The label says which digit; the code z is left "
            "to describe only the style (slant, thickness), so one code can be redrawn as every class.",
    "gan": "An implicit model: x = G(z), with no likelihood at all. A discriminator D learns to tell real "
           "from generated images and G learns to fool it; only D ever sees data. Without a likelihood "
           "the samples are judged from outside, by a digit classifier trained on real data.",
    "compare": "Every family on the same 250 held-out binarized digits, in the same unit (nats per image, "
               "log probability mass; higher is better). The estimator is named on each row: exact "
               "numbers can be compared as they are, IWAE numbers are lower bounds (trustworthy when the "
               "guide's k̂ is small), and the GAN's Parzen-window number is a weak estimator.",
    "text": "The same VAE recipe with a GRU encoder and decoder over words (Bowman et al. 2016): a code z "
            "per line, decoded word by word. KL annealing, word dropout and free bits keep the decoder "
            "from ignoring z.",
}


def register(sub) -> None:
    p = sub.add_parser("tour", help="train every family on digits and write one HTML report (report.html)",
                       description="The whole lecture in one command: trains every family on the built-in "
                                   "digits (offline), draws each family's figures, compares all of them on "
                                   "the same test set, and writes OUT/report.html (one self-contained page) "
                                   "and OUT/report.json. Under 5 minutes on 2 CPU cores (about 2.5 measured); --quick "
                                   "about half a minute.")
    p.add_argument("--data", default="digits", help="image data set (default: digits; small images only)")
    p.add_argument("--data-dir", default=None, help="folder with the shared data (default: $PROBGEN_DATA_DIR)")
    p.add_argument("--text", default="sonnets",
                   help="corpus of section 7: sonnets, tang, ptb (under the data folder) or a .txt file, one "
                        "line per sentence (default: sonnets)")
    p.add_argument("--quick", action="store_true", help="small runs (about 1 minute): a smoke test of the page")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads during the tour (default: 1; nets this small run fastest on one)")
    add_run_args(p, out="runs/tour")
    p.set_defaults(func=cmd_tour)


# -- running the family commands in-process ----------------------------------------------
def _one_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


class _Runner:
    """Runs ``probgen`` sub-commands in this process, logs their output, times every step."""

    def __init__(self, args, out: Path):
        self.args, self.out = args, out
        self.log = out / "tour.log"
        self.log.write_text("", encoding="utf-8")
        self.timings: dict[str, dict] = {}

    def cli(self, *argv) -> str:
        """``probgen ARGV`` in-process; returns its stdout; a failure raises with its one-line error."""
        from . import main

        argv = [str(a) for a in argv]
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as e:  # argparse: bad flags
                code = e.code if isinstance(e.code, int) else 2
        with self.log.open("a", encoding="utf-8") as f:
            f.write(f"$ probgen {' '.join(argv)}\n{out.getvalue()}{err.getvalue()}\n")
        if code:
            lines = [ln for ln in err.getvalue().splitlines() if "error" in ln] or err.getvalue().splitlines()
            raise RuntimeError(lines[-1].strip() if lines else f"probgen {argv[0]} exited with code {code}")
        return out.getvalue()

    def common(self, *, data: bool = True, quiet: bool = True) -> list[str]:
        """The tour's ``--data/--data-dir/--seed/--device`` (and ``--quiet``) for a sub-command."""
        a = self.args
        flags = ["--seed", a.seed, "--device", a.device] + (["--quiet"] if quiet else [])
        if data:
            flags = ["--data", a.data, *flags] + (["--data-dir", a.data_dir] if a.data_dir else [])
        return flags

    def step(self, section, what: str, fn, *fargs, **fkw):
        """Run one step of a section; a failure is written into the section, not raised."""
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            return fn(*fargs, **fkw)
        except KeyboardInterrupt:
            raise
        except Exception as e:  # noqa: BLE001 - one family failing must not end the tour
            section.error(f"{what}: {_one_line(e)}")
            with self.log.open("a", encoding="utf-8") as f:
                import traceback

                f.write(f"!! {section.key}/{what} failed\n{traceback.format_exc()}\n")
            return None
        finally:
            self.timings[f"{section.key}/{what}"] = {"wall_s": round(time.perf_counter() - t0, 2),
                                                     "cpu_s": round(time.process_time() - c0, 2)}
            if not self.args.quiet:
                t = self.timings[f"{section.key}/{what}"]
                print(f"  {section.key}: {what} ({t['wall_s']:.1f} s)", flush=True)


def _fmt(x, digits: int = 2) -> str:
    if x is None:
        return "–"
    if isinstance(x, float) and not math.isfinite(x):
        return "–"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


# -- the tour ---------------------------------------------------------------------------
def cmd_tour(args) -> int:
    import torch

    if args.threads < 1:
        raise CLIError(f"--threads must be >= 1, got {args.threads}")
    common.resolve_device(args.device)
    out = common.out_dir(args)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return _tour(args, out)
    finally:
        torch.set_num_threads(threads)


def _tour(args, out: Path) -> int:
    import torch

    from ..data import load
    from ..io import write_json
    from ..report import Report

    profile = dict(PROFILES["quick" if args.quick else "full"])
    common.seed_everything(args.seed)
    t_start, c_start = time.perf_counter(), time.process_time()
    ds = load(args.data, args.data_dir, binarize=True, seed=args.seed)  # one-line error if absent
    if ds.train_labels is None:
        raise CLIError(f"--data {args.data}: the tour needs labelled images (digits, mnist, ...)")
    if len(ds.shape) != 2:
        raise CLIError(f"--data {args.data}: the tour needs images [H, W], got examples of shape {ds.shape}")
    run = _Runner(args, out)
    models = out / "models"
    models.mkdir(exist_ok=True)
    rep = Report("probgen tour: deep generative models as probabilistic programs",
                 subtitle=f"{ds.describe()}; seed {args.seed}; {'--quick' if args.quick else 'full'} run "
                          f"on {args.device}",
                 intro="One page, one data set, every family of the lecture. Each section trains a model "
                       "on the same training images, shows what it generates, and says what to look for. "
                       "Section 6 puts all of them in one table on the same test images."
                       + (" This is a --quick run: the models are trained for a few epochs only, so "
                          "expect rough pictures; the full run (no --quick) takes about 5 minutes."
                          if args.quick else ""))
    sections = {key: rep.section(key, title, INTRO[key]) for key, title in SECTIONS.items()}
    numbers: dict[str, dict] = {key: {} for key in SECTIONS}
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    ctx = dict(args=args, ds=ds, run=run, models=models, out=out, profile=profile, numbers=numbers)
    for key, fn in (("pixel", _pixel), ("gmm", _gmm), ("vae", _vae), ("cvae", _cvae), ("gan", _gan),
                    ("compare", _compare), ("text", _text)):
        say(f"{SECTIONS[key]} ...")
        (out / key).mkdir(exist_ok=True)
        common.seed_everything(args.seed)
        torch.manual_seed(args.seed)
        run.step(sections[key], "section", fn, sections[key], **ctx)

    wall, cpu = time.perf_counter() - t_start, time.process_time() - c_start
    rep.footer = (f"Written by probgen tour{' --quick' if args.quick else ''} in {wall:.0f} s "
                  f"({cpu:.0f} s of CPU time, {torch.get_num_threads()} threads). Checkpoints are in "
                  f"{models.name}/, every family's own output in the section folders, the sub-commands' "
                  f"output in tour.log; the numbers are in report.json.")
    page = rep.write(out / "report.html")
    result = {"data": {"name": ds.name, "shape": list(ds.shape), "binarized": True, "n_train": len(ds.train),
                       "n_test": len(ds.test), "unit": "nats per image (log probability mass)"},
              "seed": args.seed, "quick": bool(args.quick), "device": args.device, "profile": profile,
              "seconds": {"wall": round(wall, 1), "cpu": round(cpu, 1), "threads": torch.get_num_threads()},
              "sections": {key: {"title": SECTIONS[key], "ok": not sections[key].errors,
                                 "errors": sections[key].errors, **numbers[key]} for key in SECTIONS},
              "timings": run.timings}
    write_json(out / "report.json", result)
    failed = [SECTIONS[k] for k in SECTIONS if sections[k].errors]
    print(f"wrote {page} and {out / 'report.json'} in {wall:.0f} s"
          + (f"; failed in part: {'; '.join(failed)}" if failed else "; every section succeeded"))
    return 0


def _load(path: Path):
    model = common.load_model(path)
    model.eval()
    return model


def _train(run, models: Path, name: str, *flags) -> Path:
    run.cli("train", "--out", models, name, *run.common(), *flags)
    return models / f"{name}.pt"


# -- 1. pixels ----------------------------------------------------------------------------
def _pixel(sec, *, args, ds, run, models, out, profile, numbers):
    import torch

    d = out / "pixel"
    p = profile
    ckpt = run.step(sec, "train pixelcnn", _train, run, models, "pixelcnn", "--epochs", p["pixel_epochs"],
                    "--channels", p["pixel_channels"], "--n-layers", p["pixel_layers"],
                    "--batch-size", p["pixel_batch"])
    if ckpt is None:
        return
    model = _load(ckpt)
    with torch.no_grad():
        ll = model.log_prob(ds.test)
    bpd = float(-ll.mean() / (math.prod(ds.shape) * math.log(2)))
    numbers["pixel"].update(test_log_likelihood=float(ll.mean()), bits_per_dim=bpd, n_params=model.n_params(),
                            estimator="exact")
    sec.paragraph(f"Exact test log-likelihood: {float(ll.mean()):.2f} nats per image "
                  f"({bpd:.3f} bits per pixel) on {len(ds.test)} test digits, {model.n_params():,} parameters, "
                  f"{p['pixel_epochs']} epochs.")
    if run.step(sec, "samples", run.cli, "sample", ckpt, "-n", 64, "--out", d / "samples.png",
                "--seed", args.seed) is not None:
        sec.figure(d / "samples.png", "64 samples, each drawn pixel by pixel in raster order. Look for "
                   "strokes that connect: every pixel only sees the ones before it, so a sample that "
                   "holds together shows the model has learnt long-range structure from local rules.")
    labels = ds.test_labels.tolist()
    index = [labels.index(c) for c in range(min(ds.n_classes, 6)) if c in labels][:6]
    rows = ds.shape[0] // 2
    if run.step(sec, "completions", run.cli, "complete", ckpt, "--index", *index, "--rows", rows, "-n", 6,
                "--out", d / "complete.png", *run.common()) is not None:
        sec.figure(d / "complete.png", f"Completions: each row is a test digit, then its top {rows} rows "
                   "(the rest grey), then 6 completions drawn by the model. Look at the variety: where the "
                   "top half is ambiguous (a 1 or a 7?) the completions should disagree.")


# -- 2. GMM -------------------------------------------------------------------------------
def _component_draws(gmm, m: int) -> "torch.Tensor":
    """``m`` draws from every component: ``[K, m, D]``."""
    import torch

    with torch.no_grad():
        if gmm.likelihood == "bernoulli":
            probs = torch.sigmoid(gmm.x_logits)  # K × D
            return torch.bernoulli(probs[:, None].expand(-1, m, -1))
        loc, scale = gmm.means, gmm.log_scales.exp()  # K × D (diagonal covariance)
        return (loc[:, None] + scale[:, None] * torch.randn(len(loc), m, loc.shape[-1])).clamp(0, 1)


def _gmm(sec, *, args, ds, run, models, out, profile, numbers):
    import torch

    from ..data import load
    from ..models import GMM
    from ..plots.tour import gmm_story

    d = out / "gmm"
    shape = ds.shape

    def gaussian():
        grey = load(args.data, args.data_dir, binarize=False, seed=args.seed, dequantize=True)
        g = GMM(10, likelihood="normal", covariance="diag", reg_covar=1e-3, x_dim=grey.x_dim, x_shape=shape)
        g.fit(grey.train, seed=args.seed, progress=False)
        ll = float(g.log_prob(grey.test).mean())
        means = g.means.detach().clamp(0, 1).reshape(-1, *shape)
        gmm_story(g.weights.detach(), means, _component_draws(g, 7).reshape(10, 7, *shape), d / "story_normal.png",
                  title="a Gaussian mixture on grey-level digits")
        numbers["gmm"]["gaussian_test_log_density"] = ll
        sec.figure(d / "story_normal.png", "The two-step story with Gaussians, fitted by EM to grey-level digits: "
                   "left the multinomial π (step 1), right each component's mean and 7 draws from its "
                   "diagonal Gaussian (step 2). Look at the draws: a diagonal Gaussian treats pixels as "
                   "independent given m, so they are speckled versions of the mean.")
        sec.paragraph(f"Exact test log density of this Gaussian mixture on dequantized grey levels: {ll:.2f} nats "
                      "per image (a density, not comparable with the probability masses of section 6).")

    run.step(sec, "gaussian mixture", gaussian)
    ckpt = run.step(sec, "train mixture of Bernoullis", _train, run, models, "gmm")
    if ckpt is None:
        return
    g = _load(ckpt)
    ll = float(g.log_prob(ds.test).mean())
    numbers["gmm"].update(test_log_likelihood=ll, estimator="exact", n_components=g.n_components,
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
    if run.step(sec, "samples", run.cli, "sample", ckpt, "-n", 64, "--out", d / "samples.png",
                "--seed", args.seed) is not None:
        sec.figure(d / "samples.png", "64 samples from the story run forwards (m, then x). Look for the noise: "
                   "the pixels are independent given m, so samples look like noisy templates, not strokes.")


# -- 3. VAE -------------------------------------------------------------------------------
def _vae(sec, *, args, ds, run, models, out, profile, numbers):
    import torch

    d = out / "vae"
    p = profile
    ckpt = run.step(sec, "train vae", _train, run, models, "vae", "--epochs", p["vae_epochs"],
                    "--batch-size", p["batch"])
    ae_ckpt = run.step(sec, "train autoencoder", _train, run, models, "autoencoder", "--epochs", p["ae_epochs"],
                       "--batch-size", p["batch"])
    if ckpt is None:
        return
    vae = _load(ckpt)
    numbers["vae"].update(z_dim=vae.z_dim, n_params=vae.n_params(), epochs=p["vae_epochs"])
    if run.step(sec, "samples", run.cli, "sample", ckpt, "-n", 64, "--mean", "--out", d / "samples.png",
                "--seed", args.seed) is not None:
        sec.figure(d / "samples.png", "64 samples: z ~ N(0, I), then the decoder's mean image. Look for "
                   "variety (all ten digits) and for blur: mean images average over the pixel noise.")
    # the two code dimensions the encoder uses most (smallest posterior spread)
    _, scale = vae.encode(ds.test)
    active = torch.argsort(scale.mean(0))[:2].tolist()
    numbers["vae"]["traversed_dims"] = active
    if run.step(sec, "traversal", run.cli, "traverse", ckpt, "--dims", *active, "--base", "image:0",
                "--steps", 9, "--out", d / "traverse.png", *run.common(quiet=False)) is not None:
        sec.figure(d / "traverse.png", f"Fix 8, vary 2: the code of test image 0 with {vae.z_dim - 2} dimensions "
                   f"held fixed and dimensions {active[0]} (down) and {active[1]} (across) swept from -3 to 3. "
                   "Look for smooth change: one direction may turn the digit into another class, the other "
                   "change its slant or width.")
    labels = ds.test_labels.tolist()
    b = next((i for i, y in enumerate(labels) if y != labels[0]), 1)
    if run.step(sec, "interpolation", run.cli, "interpolate", ckpt, "--from", 0, "--to", b, "--steps", 10,
                "--slerp", "--out", d / "interpolate.png", *run.common(quiet=False)) is not None:
        sec.figure(d / "interpolate.png", f"From test image 0 to test image {b}: first row the straight line "
                   "between their codes, second row the great circle. Every step should look like a "
                   "digit: the code space has no holes between the data.")
    if ae_ckpt is not None:
        run.step(sec, "auto-encoder vs VAE", _why_vae, sec, vae, _load(ae_ckpt), ds, d, args, numbers["vae"])


def _why_vae(sec, vae, ae, ds, d: Path, args, numbers: dict) -> None:
    import torch

    from ..metrics import sample_quality, train_classifier
    from ..plots.vae import why_vae_figure

    clf = train_classifier(ds, seed=args.seed)
    torch.manual_seed(args.seed)
    z = torch.randn(500, vae.z_dim)  # the same codes for both decoders
    samples = {"VAE, z ~ N(0, I)": vae.sample(500, z=z, mean=True).cpu(),
               "auto-encoder, z ~ N(0, I)": ae.sample(500, z=z, mean=True).cpu(),
               "auto-encoder, z ~ fitted Gaussian": ae.sample(500, code_prior="fitted", mean=True).cpu()}
    rows, panels = [], []
    for name, x in samples.items():
        q = sample_quality(clf, x)
        rows.append([name, f"{q['mean_confidence']:.3f}", f"{q['coverage'] * ds.n_classes:.0f}/{ds.n_classes}"])
        numbers.setdefault("why_vae", {})[name] = {"mean_confidence": q["mean_confidence"], "coverage": q["coverage"]}
        panels.append((f"{name}\nconfidence {q['mean_confidence']:.2f}", x[:36]))
    why_vae_figure(panels, d / "why_vae.png", nrow=6, suptitle="the same random codes, the same layer sizes")
    sec.heading("Why not a plain auto-encoder?")
    sec.figure(d / "why_vae.png", "An auto-encoder with the same layers, trained to reconstruct only, decodes the "
               "same random codes. Look at the middle panel: nothing tied the auto-encoder's codes to N(0, I), "
               "so random codes land where it never put an image; the VAE's KL term is what makes its code "
               "space a place to sample from.")
    sec.table(["samples (500, decoder means)", "classifier confidence ↑", "classes found"], rows,
              caption=f"judged by a digit classifier trained on the real training images "
                      f"(test accuracy {clf.test_accuracy:.3f})")


# -- 4. CVAE ------------------------------------------------------------------------------
def _cvae(sec, *, args, ds, run, models, out, profile, numbers):
    import torch

    d = out / "cvae"
    ckpt = run.step(sec, "train cvae", _train, run, models, "cvae", "--epochs", profile["cvae_epochs"],
                    "--batch-size", profile["batch"])
    if ckpt is None:
        return
    cvae = _load(ckpt)
    numbers["cvae"].update(z_dim=cvae.z_dim, n_params=cvae.n_params())
    C = cvae.n_classes

    def rows():
        torch.manual_seed(args.seed)
        z = torch.randn(10, cvae.z_dim).repeat(C, 1)  # the same 10 codes in every row
        x = cvae.sample(10 * C, label=torch.arange(C).repeat_interleave(10), z=z, mean=True)
        common.save_images(x.cpu(), d / "classes.png", nrow=10)
        sec.figure(d / "classes.png", "One row per class, the same 10 random codes in every column. Look down a "
                   "column: the class changes with the row while the style (slant, thickness, size) stays, "
                   "because the label carries the class and z only the style.")

    run.step(sec, "one row per class", rows)
    if run.step(sec, "style transfer", run.cli, "style-transfer", ckpt, "--index", 0, 1, 2, 3, 4,
                "--out", d / "style_transfer.png", *run.common(quiet=False)) is not None:
        sec.figure(d / "style_transfer.png", "Style transfer: each row starts with a test digit; its code "
                   "q(z | x, y) is then decoded with every label 0–9. Look for the original's style carried "
                   "over to all ten digits.")


# -- 5. GAN -------------------------------------------------------------------------------
def _gan(sec, *, args, ds, run, models, out, profile, numbers):
    import json

    d = out / "gan"
    p = profile
    toy = d / "toy"
    if run.step(sec, "1-D toy", run.cli, "gan-toy", "--steps", p["toy_steps"], "--snapshots", 5,
                "--out", toy, "--seed", args.seed, "--quiet") is not None:
        info = json.loads((toy / "toy.json").read_text())
        numbers["gan"]["toy"] = {k: info.get(k) for k in ("final_wasserstein", "wasserstein_floor",
                                                          "mode_mass", "all_modes_covered", "steps")}
        sec.figure(toy / "toy.png", "The lecture's 1-D picture at several training steps: the data density "
                   "(shaded blue), the generator's histogram and density (green) and the discriminator D(x) "
                   "(red dashed, right axis). Look at D: it is "
                   "high where data outweighs samples, and the generator moves its mass uphill on D until D "
                   "is flat at ½.")
        if (toy / "toy.gif").exists():
            sec.figure(toy / "toy.gif", "The same, animated.")
        sec.paragraph(f"After {info.get('steps')} steps the 1-D Wasserstein distance to the data is "
                      f"{info.get('final_wasserstein', float('nan')):.3f} (two data samples differ by "
                      f"{info.get('wasserstein_floor', float('nan')):.3f}); mass per mode "
                      f"{', '.join(f'{m:.2f}' for m in info.get('mode_mass', []))}.")
    ckpt = run.step(sec, "train gan", _train, run, models, "gan", "--binarize", "--epochs", p["gan_epochs"],
                    "--arch", p["gan_arch"], "--grid-every", 0, "--no-monitor")
    if ckpt is None:
        return
    if (models / "gan_samples.png").exists():
        sec.figure(models / "gan_samples.png", "64 GAN samples G(z) on the binarized digits. Look for sharp "
                   "strokes (no blur: nothing averages pixels) and for missing classes (mode collapse).")
    if run.step(sec, "code-space walk", run.cli, "walk", ckpt, "--n", 5, "--steps", 8, "--out", d / "walk.png",
                "--seed", args.seed) is not None:
        sec.figure(d / "walk.png", "Walks between random codes, along straight lines and great circles. Look "
                   "for smooth changes between digits; the middle of a straight line has a smaller norm than "
                   "typical codes, which can show as fainter images.")
    others = [models / f"{n}.pt" for n in ("vae", "autoencoder", "gmm", "pixelcnn") if (models / f"{n}.pt").exists()]

    def judge():
        run.cli("gan-eval", ckpt, *others, "-n", p["eval_n"], "--binarize", "--out", d / "eval", *run.common())
        ev = json.loads((d / "eval" / "eval.json").read_text())
        numbers["gan"]["quality"] = ev
        rows = [["real test images", "–", "–", f"{ev['frechet_floor_val_vs_test']:.2f} (val vs test)"]]
        for name, r in ev["models"].items():
            rows.append([name, f"{r['classes_found']}/{ds.n_classes}", f"{r['mean_confidence']:.3f}",
                         f"{r['frechet_classifier_features']:.2f}"])
        sec.heading("Judged by a classifier")
        sec.table(["model", "classes found", "mean confidence", "Fréchet distance ↓"], rows,
                  caption=f"{p['eval_n']} samples per model; a digit classifier trained on the real training "
                          f"images (test accuracy {ev['classifier_test_accuracy']:.3f}) labels them. The Fréchet "
                          "distance is measured in that classifier's features: the FID recipe, but NOT Inception "
                          "FID, comparable only within this table.")
        sec.figure(d / "eval" / "class_histograms.png", "Which classes each model's samples are recognised as. "
                   "Look for coverage: a collapsed GAN piles its samples into a few classes; the likelihood "
                   "models are pushed to cover every training image and rarely miss a class.")

    run.step(sec, "coverage and Fréchet distance", judge)


# -- 6. comparison ------------------------------------------------------------------------
#: table order: exact first, then the bounds, then the weak estimators
ORDER = ("gmm", "pixelcnn", "pixelrnn", "vae", "mixture-vae", "cvae", "autoencoder", "gan")


def _cvae_marginal(model, ds, k: int):
    """log p(x) = log Σ_y p(y) p(x | y) with p(y) uniform, each p(x | y) by IWAE: comparable with
    the unconditional models (log p(x | y_true) would use the label as free information)."""
    import torch

    from ..evaluate import log_likelihood

    C = model.n_classes
    with torch.no_grad():
        per = torch.stack([log_likelihood(model, ds.test, y=torch.full((len(ds.test),), c, dtype=torch.long),
                                          num_samples=k) for c in range(C)])  # C × n
    return torch.logsumexp(per, 0) - math.log(C)


def _score(name: str, model, ds, args, k: int):
    import torch

    from ..evaluate import log_likelihood
    from .spine import COMPARE_EVALUATORS

    if name == "cvae":
        return _cvae_marginal(model, ds, k), "IWAE, Σ_y p(y) p(x|y)", k
    ns = argparse.Namespace(num_samples=k, seed=args.seed, device=args.device)
    if name in COMPARE_EVALUATORS:  # the family's own estimator (exact, Parzen, ...)
        values, estimator, kk = COMPARE_EVALUATORS[name](model, ds, ns)
        return values, estimator, kk
    with torch.no_grad():
        values = log_likelihood(model, ds.test, num_samples=k)
    exact = getattr(model, "has_exact_log_prob", False)
    return values.cpu(), "exact" if exact else "IWAE", None if exact else k


def _compare(sec, *, args, ds, run, models, out, profile, numbers):
    import numpy as np

    from .. import diagnostics
    from ..evaluate import summarize
    from ..plots.diagnostics import plot_khat
    from ..plots.tour import loglik_bars

    d = out / "compare"
    p = profile
    run.step(sec, "train mixture-vae", _train, run, models, "mixture-vae", "--epochs", p["mvae_epochs"],
             "--warmup-epochs", p["mvae_warmup"], "--batch-size", p["batch"])
    if p["pixelrnn"]:
        run.step(sec, "train pixelrnn", _train, run, models, "pixelrnn", "--epochs", p["pixel_epochs"],
                 "--batch-size", p["pixel_batch"])
    rows, pointwise, loaded = [], {}, {}
    for name in ORDER:
        path = models / f"{name}.pt"
        if not path.exists():
            continue

        def score(name=name, path=path):
            import time as _t

            model = _load(path)
            loaded[name] = model
            common.seed_everything(args.seed)
            t0 = _t.perf_counter()
            values, estimator, k = _score(name, model, ds, args, p["iwae_k"])
            res = summarize(values)
            pointwise[name] = values.double().numpy()
            rows.append({"name": name, "test_log_likelihood": res.mean, "stderr": res.stderr,
                         "estimator": estimator, "num_samples": k, "n_params": int(model.n_params()),
                         "n_test": res.n, "eval_seconds": round(_t.perf_counter() - t0, 2)})

        run.step(sec, f"score {name}", score)
    if not rows:
        sec.error("no model was trained: nothing to compare")
        return
    elpd = None
    if len(pointwise) > 1:
        elpd = run.step(sec, "ArviZ elpd comparison", diagnostics.compare_pointwise, pointwise,
                        figure=d / "elpd_compare.png")
    khat = {}

    def guide_k(name):
        model = loaded[name]
        y = ds.test_labels if getattr(model, "needs_labels", False) else None
        common.seed_everything(args.seed)
        q = diagnostics.guide_quality(model, ds.test, p["khat_k"], y=y)
        khat[name] = q

    for name in ("vae", "mixture-vae", "cvae"):
        if name in loaded:
            run.step(sec, f"guide k-hat {name}", guide_k, name)
    numbers["compare"]["models"] = rows
    if elpd:
        numbers["compare"]["elpd"] = {k: v for k, v in elpd.items() if k != "text"}
    numbers["compare"]["guide_khat"] = {n: q.summary() for n, q in khat.items()}

    # -- the table ------------------------------------------------------------------------
    header = ["model", "parameters", "test log-lik (nats/image)", "estimator", "K", "elpd diff ± dse",
              "stacking weight", "k̂ > 0.7 (guide)"]
    table = []
    for r in rows:
        m = (elpd or {}).get("models", {}).get(r["name"], {})
        diff = "best" if m.get("rank") == 0 else (f"{m['elpd_diff']:.1f} ± {m['dse']:.1f}" if m else "–")
        q = khat.get(r["name"])
        kbad = f"{q.counts()['bad']}/{len(q.khat)}" if q is not None else "–"
        table.append([r["name"], f"{r['n_params']:,}", f"{r['test_log_likelihood']:.2f} ± {r['stderr']:.2f}",
                      r["estimator"], _fmt(r["num_samples"]), diff,
                      _fmt(m.get("weight")) if m else "–", kbad])
    sec.table(header, table, caption=f"{len(ds.test)} binarized test digits, the same for every row; ± is one "
              "standard error over test images. elpd diff is the difference in summed log-likelihood to the "
              "best model with its standard error from the pointwise differences (ArviZ-style comparison); "
              "k̂ counts test points whose importance weights have a heavy tail (> 0.7: that point's IWAE "
              "number is unreliable). The CVAE is scored as log Σ_y p(y) p(x | y), not given the label.")
    run.step(sec, "bar chart", loglik_bars, rows, d / "loglik.png")
    sec.figure(d / "loglik.png", "The table as bars (±2 s.e.). Look first at the estimator: compare exact with "
               "exact; an IWAE bar could only grow with more samples K, and the Parzen bar says little.")
    if elpd:
        sec.figure(d / "elpd_compare.png", "ArviZ-style comparison: open circles are each model's elpd ± se, "
                   "grey triangles the difference to the best ± dse. Differences are much surer than the "
                   "elpds themselves, because hard test digits are hard for every model.")
        sec.pre(elpd.get("text", ""))
    if khat:
        first, *rest = khat
        plot_khat(khat[first].khat, d / "khat.png", compare={n: khat[n].khat for n in rest},
                  title=f"Pareto k̂ of the guides' importance weights, K={p['khat_k']} (guide = {first})")
        lines = [f"{n}: k̂ median {np.median(np.where(np.isfinite(q.khat), q.khat, -1)):.2f}, "
                 f"{q.counts()['bad']} of {len(q.khat)} points > 0.7, ESS median {np.median(q.ess):.0f}/"
                 f"{q.num_samples}, IWAE − ELBO gap {q.gap.mean():.2f} nats" for n, q in khat.items()]
        sec.figure(d / "khat.png", "Pareto k̂ per test point for each model with a guide. Points above the "
                   "dashed 0.7 line have importance weights too heavy-tailed for their IWAE number to be "
                   "trusted; many such points mean that model is under-rated in the table.")
        sec.pre("\n".join(lines))


# -- 7. text ------------------------------------------------------------------------------
def _text(sec, *, args, ds, run, models, out, profile, numbers):
    import json

    from ..textdata import load_text

    p = profile
    try:
        text = load_text(args.text, data_dir=args.data_dir, max_len=40)
    except FileNotFoundError as e:
        numbers["text"]["skipped"] = str(e)
        sec.note(f"No text corpus here ({e}). To see this section, point the tour at one: put the corpora "
                 "folder in PROBGEN_DATA_DIR or pass --data-dir DIR (with DIR/poetry/english/"
                 "shakespeare_sonnets.txt for the default --text sonnets), or pass --text FILE.txt with one "
                 "line or sentence per line.")
        return
    flags = ["--text", args.text, "--epochs", p["text_epochs"], "--hidden", p["text_hidden"],
             "--embed-dim", p["text_embed"], "--z-dim", 16, "--eval-samples", 20, "--eval-max", 200,
             "--val-max", 200, "--seed", args.seed, "--device", args.device, "--quiet"]
    if p["text_lines"]:
        flags += ["--max-lines", p["text_lines"]]
    if args.data_dir:
        flags += ["--data-dir", args.data_dir]
    ok = run.step(sec, "train sentence-vae", run.cli, "train", "--out", models, "sentence-vae", *flags)
    if ok is None:
        return
    ckpt = models / "sentence-vae.pt"
    info = json.loads((models / "sentence-vae.json").read_text())
    t = info.get("test", {})
    numbers["text"].update(corpus=info.get("data"), test=t, n_params=info.get("n_params"))
    sec.paragraph(f"Trained on {info.get('data')} for {p['text_epochs']} epoch(s)"
                  + (f" on {p['text_lines']} lines" if p["text_lines"] else "") + ". "
                  + (f"Test: KL {t['kl']:.2f} nats per line (how much the code is used), "
                     f"−ELBO {-t['elbo']:.2f} nats per line" if "kl" in t else "")
                  + (f", perplexity {t['ppl']:.1f} ({t['estimator']})." if "ppl" in t else "."))
    poems = run.step(sec, "poems", run.cli, "poem", ckpt, "-n", 3, "--lines", 4, "--seed", args.seed)
    if poems is not None:
        sec.heading("Three poems of four lines")
        sec.pre(poems.strip())
        sec.paragraph("Each poem's four codes take a correlated random walk, so neighbouring lines should share "
                      "words or a theme. Look for grammar within a line (the decoder) and for lines that differ "
                      "from each other (the code): lines that all look alike mean the KL collapsed to zero.")
    test = text.sentences("test")
    if len(test) >= 2:
        a, b = test[0], test[1]
        lines = run.step(sec, "interpolation", run.cli, "interpolate-text", ckpt, a, b, "--steps", 5,
                         "--seed", args.seed)
        if lines is not None:
            sec.heading("From one test line to another")
            sec.pre(lines.strip())
            sec.paragraph("The codes on the straight line between two test lines, decoded greedily. Look for "
                          "the gradual change: a smooth code space gives grammatical lines all the way.")
