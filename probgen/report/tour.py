"""The tour: the whole lecture as one HTML page a person reads (``probgen tour``).

Trains every family on the built-in digits (offline), draws each family's pictures with its
recipes (:mod:`probgen.recipes`) into sub-folders of the output folder, scores all of them on
the same test set with the one scoring policy (:func:`probgen.recipes.compare.score_model`), and
writes ``OUT/report.html`` (one self-contained page: images embedded, inline CSS, no scripts)
and ``OUT/report.json`` (the numbers).

A section whose family fails says so on the page (the one-line error) and the tour goes on.
Everything the recipes print goes to ``OUT/tour.log``. The sections are in
:mod:`probgen.report.sections`; this module runs them.
"""
from __future__ import annotations

import contextlib
import io
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from ..recipes.config import (MAX_THREADS, RunConfig, describe_device, opt, out_dir, resolve_device, runs_in, seed_everything,
                              with_device)
from ..runtime import log
from .budget import COST, PROFILES, Eta, choose_profile, duration, estimate, tour_profile
from .families import tour_families

__all__ = ["TourConfig", "TourResult", "tour", "check_inputs", "SECTIONS", "FACE_SECTIONS", "PROFILES", "INTRO",
           "Tour", "tour_families"]

#: section key -> heading on the page (the tests look for these). A family appears in the section its
#: registry entry names (``register_model(..., tour=KEY)``): the first one registered there is the section's
#: own (its dedicated figures), every other one gets a subsection (samples, test log-likelihood)
SECTIONS = {
    "pixels": "1. Autoregressive pixel model",
    "mixture": "2. Gaussian mixture: the two-step story",
    "gmm-to-vae": "3. From GMM to VAE: a continuous code, a distributed representation",
    "conditional": "4. Conditional VAE",
    "adversarial": "5. GAN",
    "compare": "6. Comparison on the same test set",
    "problems": "7. Problems of the VAE: blur, and imitate or create?",
    "encoder": "8. Is the encoder right? Calibration and collapse",
    "text": "9. The VAE writes lines",
}

#: the page for unlabelled grey-level faces (``--data frey-face``)
FACE_SECTIONS = {
    "faces": "1. Frey faces: fix all code dimensions but two",
    "problems": "2. Problems of the VAE: blur, and imitate or create?",
}

INTRO = {
    "pixels": "No latent variable at all: a Gated PixelCNN writes an image one pixel at a time, each pixel "
             "given all the pixels above and to the left, p(x) = Π p(x_i | x_<i). Because every "
             "conditional is a plain Bernoulli, the log-likelihood is exact.",
    "mixture": "The simplest latent-variable story: first pick a component m from a multinomial, then draw "
           "the image from that component's Gaussian (for black-and-white pixels, a product of "
           "Bernoullis). m is a discrete Pyro site that is summed out exactly by enumeration, so this "
           "log-likelihood is exact too.",
    "gmm-to-vae": "Replace the discrete m by a continuous code z ~ N(0, I) and the table of component means by "
           "a decoder network: every image is now described by 10 numbers at once (a distributed "
           "representation). z can no longer be summed out, so an encoder q(z | x) is trained alongside "
           "by SVI, and its log-likelihood is an importance-weighted (IWAE) lower bound. The other stories "
           "of this step follow, each with its samples and its test log-likelihood.",
    "conditional": "Give the VAE the label as well: p(x | z, y). The label says which digit; the code z is left "
            "to describe only the style (slant, thickness), so one code can be redrawn as every class.",
    "adversarial": "An implicit model: x = G(z), with no likelihood at all. A discriminator D learns to tell real "
           "from generated images and G learns to fool it; only D ever sees data. Without a likelihood "
           "the samples are judged from outside, by a digit classifier trained on real data.",
    "compare": "Every family on the same held-out binarized test images, in the same unit (nats per image, "
               "log probability mass; higher is better). The estimator is named on each row: exact "
               "numbers can be compared as they are, IWAE numbers are lower bounds (trustworthy when the "
               "guide's k̂ is small), and the GAN's Parzen-window number is a weak estimator.",
    "problems": "The lecture names two problems of the VAE. Its images are blurry: the decoder's mean image "
                "averages over everything the code leaves open, and drawing the pixels independently adds noise "
                "instead of detail. And does it create, or only imitate its training set? Each generated image "
                "is set beside its nearest training image, and the distances are compared with those of real "
                "images the model never saw.",
    "faces": "Grey-level faces of one person (Frey, 1965 images of 28×20). A VAE with a two-dimensional code: "
             "every face is two numbers, so the whole code space is one picture. Fixing all code dimensions "
             "but two and sweeping those two is the lecture's picture: one direction turns the head, the other "
             "changes the expression.",
    "story": "Your own Pyro program, unchanged: trained by the same SVI trainer on the same training images, "
             "its samples drawn from the model run forwards, and its test log-likelihood scored by the same "
             "policy as every family (IWAE from its guide), as one more row of the comparison.",
    "encoder": "The guide q(z | x) is trained to approximate the posterior p(z | x); is it right? Draw a code "
               "from the prior and an image from the decoder, then ask where the true code falls among draws of "
               "q(z | x): for a calibrated encoder that rank is uniform (simulation-based calibration, one "
               "forward pass per draw). And is the code used at all? A collapsed code has q(z | x) = p(z) for "
               "every image: no active units, no KL, no information about x. probgen diagnose MODEL prints the "
               "same numbers for any checkpoint.",
    "text": "The same VAE recipe with a GRU encoder and decoder over words (Bowman et al. 2016): a code z "
            "per line, decoded word by word. KL annealing, word dropout and free bits keep the decoder "
            "from ignoring z.",
}


#: the most torch threads ``--threads`` takes (more is a typo; torch itself overflows at 2**31)
MAX_THREADS = 1024


@dataclass
class TourConfig:
    """``probgen tour``: every family on one data set, one page."""

    data: str = opt("digits", "image data set: digits (built in), mnist, binarized-mnist (labelled: every family) "
                              "or frey-face (grey faces: the faces page)")
    data_dir: str | None = opt(None, "folder with the shared data (default: $PROBGEN_DATA_DIR)")
    text: str = opt("sonnets", "corpus of section 8: sonnets, tang, ptb (under the data folder) or a .txt file, "
                               "one line per sentence")
    quick: bool = opt(False, "small runs (about 35 s on 2 CPU cores): a smoke test of the page")
    train_size: int | None = opt(None, "train the families on the first N training images (MNIST: 5000 keeps a "
                                       "full run on 2 CPU cores at 10-14 minutes)", metavar="N")
    threads: int = opt(1, "torch CPU threads during the tour (nets this small run fastest on one)",
                       bounds=(1, MAX_THREADS, "torch threads"))
    story: str = opt("", "add a section for your own story FILE.py:NAME (any Pyro model/guide pair; runs that "
                         "file's code): trained on the same data, its samples, its row in the comparison",
                     metavar="FILE.py:NAME")
    story_args: list = opt(None, "its constructor arguments: KEY=VALUE ... or one JSON object", nargs="*",
                           metavar="KEY=VALUE", default_factory=list)
    run: RunConfig = runs_in("runs/tour")


@dataclass
class TourResult:
    page: Path  # report.html
    json: Path  # report.json
    summary: dict  # what report.json holds
    failed: list  # titles of the sections that failed in part
    lines: list  # what a caller may print


def _identity(st) -> tuple[int, int]:
    """A file's identity for :meth:`Tour.has`: the atomic writer replaces a file by a new one."""
    return st.st_ino, st.st_mtime_ns


def _one_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


class Tour:
    """What every section needs: the config, the data, the folders, the numbers; runs steps."""

    def __init__(self, cfg: TourConfig, ds, out: Path, sections: dict | None = None, folder=None):
        self.cfg, self.ds, self.out = cfg, ds, out
        self.binarize = bool(ds.binarized)
        self.seed, self.device = cfg.run.seed, str(resolve_device(cfg.run.device))  # every step's device
        # the run's sizes: chosen by the data and the device, epochs scaled to the training images (budget.py)
        self.n_train = min(cfg.train_size or len(ds.train), len(ds.train))
        self.profile_name = choose_profile(quick=cfg.quick, pixels=ds.x_dim, device=self.device)
        self.profile = tour_profile(self.profile_name, self.n_train)
        self.ds = self.subsets(ds)
        self.models = out / "models"
        self.models.mkdir(parents=True, exist_ok=True)
        # checkpoints already there when this tour began: never this tour's until it rewrites them (has())
        self._found = {p.name: _identity(p.stat()) for p in self.models.glob("*.pt")}
        self.folder = folder  # the tour's manifest (folder.TourFolder), brought up to date after every step
        self.numbers: dict[str, dict] = {key: {} for key in (sections or SECTIONS)}
        self.log = out / "tour.log"
        self.log.write_text("", encoding="utf-8")
        self.timings: dict[str, dict] = {}
        self.stdout = sys.stdout  # progress lines go here, past the steps' captured output
        self.run_cfg = RunConfig(out=str(self.models), seed=self.seed, device=self.device, quiet=True)
        self._grey = self._dequantized = None

    def _write_log(self, text: str) -> None:
        with self.log.open("a", encoding="utf-8") as f:
            f.write(text)

    def step(self, section, what: str, fn, *args, **kwargs):
        """Run one step of a section; its output goes to the log, a failure into the section."""
        t0, c0 = time.perf_counter(), time.process_time()
        buf = io.StringIO()
        try:
            with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
                result = fn(*args, **kwargs)
            lines = getattr(result, "lines", None) or getattr(result, "notes", None)
            if isinstance(lines, list) and all(isinstance(s, str) for s in lines):
                buf.write("\n".join(lines) + "\n")
            return result
        except KeyboardInterrupt:
            raise
        except Exception as e:  # noqa: BLE001 - one family failing must not end the tour
            section.error(f"{what}: {_one_line(e)}")
            buf.write(f"!! {section.key}/{what} failed\n{traceback.format_exc()}")
            return None
        finally:
            self._write_log(f"== {section.key}: {what}\n{buf.getvalue()}\n")
            if self.folder is not None:  # what the tour wrote so far, also when Ctrl-C stops it here
                self.folder.update()
            t = self.timings[f"{section.key}/{what}"] = {"wall_s": round(time.perf_counter() - t0, 2),
                                                         "cpu_s": round(time.process_time() - c0, 2)}
            self.say(f"  {section.key}: {what} ({t['wall_s']:.1f} s wall)")

    def say(self, line: str) -> None:
        """One progress line on the tour's own output (not into the steps' captured output); none with --quiet."""
        if not self.cfg.run.quiet:
            log(line, file=self.stdout)

    # -- helpers the sections share ---------------------------------------------------------------
    def families(self, stop: str) -> list[str]:
        """The families registered for section ``stop`` (:func:`tour_families`)."""
        return tour_families(stop)

    def lead(self, stop: str) -> str:
        """The family whose dedicated figures section ``stop`` draws: the first registered there.

        :raises ValueError: no family names that section.
        """
        names = tour_families(stop)
        if not names:
            raise ValueError(f"no registered family names the tour section {stop!r} (register_model(..., tour=...))")
        return names[0]

    def data_config(self, *, binarize: bool | None = None):
        from ..recipes.config import DataConfig

        binarize = self.binarize if binarize is None else binarize
        return DataConfig(data=self.cfg.data, data_dir=self.cfg.data_dir, binarize=binarize, seed=self.seed)

    def dequantized(self):
        """The tour's images as dequantized grey levels (loaded once): the data of the Gaussian stories
        (the Gaussian mixture, a family registered for continuous data), scored as densities."""
        if self._dequantized is None:
            from ..data import load

            self._dequantized = self.subsets(load(self.cfg.data, self.cfg.data_dir, binarize=False, seed=self.seed,
                                                  dequantize=True))
        return self._dequantized

    def grey(self):
        """The tour's images with their grey levels kept (loaded once): what the GAN trains on."""
        if self._grey is None:
            from ..data import load

            self._grey = self.subsets(load(self.cfg.data, self.cfg.data_dir, binarize=False, seed=self.seed))
        return self._grey

    def subsets(self, ds):
        """``ds`` with the profile's ``val_n`` validation and ``test_n`` test images, drawn at random (a test
        split may be sorted by class) when it has more; the same draw for every copy of the data, and the
        data spec of the whole set, so that a checkpoint of the tour still names the data it came from."""
        import dataclasses

        import torch

        cut = {}
        for split, n in (("val", self.profile["val_n"]), ("test", self.profile["test_n"])):
            x, y = getattr(ds, split), getattr(ds, f"{split}_labels")
            if n is not None and len(x) > n:
                idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(self.seed))[:n].sort().values
                cut.update({split: x[idx], f"{split}_labels": None if y is None else y[idx]})
        if not cut:
            return ds
        return dataclasses.replace(ds, **cut, load_args={**ds.load_args, "splits": ds.spec["splits"]})

    def checkpoint(self, name: str) -> Path:
        from ..io import run_files

        return run_files(self.models, name).checkpoint

    def has(self, name: str) -> bool:
        """``models/<name>.pt`` was written by this tour: a checkpoint that was there before it began (another
        data set's, a killed run's) and that it has not rewritten is never picked up."""
        path = self.checkpoint(name)
        try:
            return self._found.get(path.name) != _identity(path.stat())
        except OSError:
            return False

    def train(self, name: str, *, data=None, **params):
        """Train family ``name`` (its defaults, ``params`` laid over them) on the tour's data (or ``data``),
        save it to ``models/<name>.pt`` and return it loaded from there (the best epoch), in eval mode."""
        from ..recipes.config import replace_given
        from ..recipes.models import model_spec
        from ..recipes.train import train_model

        seed_everything(self.seed)
        spec = model_spec(name)
        params = {"threads": self.cfg.threads, **params}  # the tour's --threads, not the trainers' default
        if self.cfg.train_size is not None:
            params = {"train_size": self.cfg.train_size, **params}  # families without the option ignore it
        res = train_model(name, replace_given(spec.config(), **params), None, self.run_cfg,
                          self.ds if data is None else data,
                          path=self.checkpoint(name))
        print("\n".join([*res.notes, res.line(name)]))
        return self.load(name)

    def load(self, name: str):
        from ..models import load

        model = load(self.checkpoint(name), device=self.device)
        model.eval()
        return model

    def sample(self, name: str, png: Path, *, mean: bool = False):
        """64 samples of ``models/<name>.pt`` into ``png`` (the ``probgen sample`` recipe)."""
        from ..recipes.train import SampleConfig, sample

        return sample(SampleConfig(checkpoint=str(self.checkpoint(name)), n=64, out=str(png), draws=not mean,
                                   seed=self.seed, device=self.device))


# -- the tour -----------------------------------------------------------------------------------
def check_inputs(cfg: TourConfig) -> tuple:
    """Every input of the tour checked before anything is written or trained: the options, the data folder,
    the images, the story (**runs its file's code**) and the text corpus of the page's text section.

    :return: ``(images, page sections)``: the images as the tour uses them and the sections of their page.
    :raises ValueError: (or ``FileNotFoundError``) one line naming the first bad input.
    """
    from ..data import load

    if not 1 <= cfg.threads <= MAX_THREADS:
        raise ValueError(f"--threads must be between 1 and {MAX_THREADS}, got {cfg.threads}")
    if cfg.train_size is not None and cfg.train_size < 1:
        raise ValueError(f"--train-size must be >= 1, got {cfg.train_size}")
    if not 0 <= cfg.run.seed < 2**32:  # what NumPy and Pyro take
        raise ValueError(f"--seed must be between 0 and 2**32 - 1, got {cfg.run.seed}")
    resolve_device(cfg.run.device, threads=cfg.threads)  # the run's first line: the device
    if cfg.data_dir is not None and not Path(cfg.data_dir).is_dir():
        raise ValueError(f"--data-dir {cfg.data_dir}: " + ("is not a folder" if Path(cfg.data_dir).exists()
                                                            else "no such folder"))
    if cfg.story:  # fail now, in one line, rather than after every other family has trained
        from .pictures import check_story_option

        check_story_option(cfg.story, cfg.story_args)
    seed = cfg.run.seed
    ds = load(cfg.data, cfg.data_dir, binarize=True, seed=seed)  # one-line error if absent
    page_sections = SECTIONS
    if ds.train_labels is None:  # grey faces: keep the grey levels, show the faces page
        ds, page_sections = load(cfg.data, cfg.data_dir, binarize=False, seed=seed), FACE_SECTIONS
    if len(ds.shape) != 2:
        raise ValueError(f"--data {cfg.data}: the tour needs images [H, W], got examples of shape {ds.shape}")
    if "text" in page_sections:  # the corpus as the text section reads it: missing, empty, binary, a FIFO
        from ..data import load_text
        from .sections import TEXT_MAX_LEN

        try:
            load_text(cfg.text, data_dir=cfg.data_dir, max_len=TEXT_MAX_LEN)
        except (ValueError, OSError) as e:  # the message names the file or corpus
            raise ValueError(f"--text: {(str(e).strip() or type(e).__name__).splitlines()[0]}") from None
    if cfg.story:  # its own section, just before the comparison that scores it
        from .pictures import with_story_section

        page_sections = with_story_section(page_sections, cfg.story)
    return ds, page_sections


def tour(cfg: TourConfig) -> TourResult:
    """Run every section (a failing one is reported in its section) and write the page and the numbers.

    Every input is checked first (:func:`check_inputs`); the folder is the tour's by its manifest
    (:mod:`probgen.report.folder`): a rerun of the same data set there starts again, another data set is
    refused unless ``--force``.

    :raises ValueError: bad options, data that is missing, unlabelled or not images, a bad story or text
        corpus, or an ``--out`` that holds something else (one line).
    """
    import torch

    from ..runs import run_folder
    from ..runtime import flush_first
    from .folder import TourFolder, check_folder, remove_previous

    out = Path(cfg.run.out)
    ds, page_sections = check_inputs(cfg)
    data = ds.load_args["name"]  # digits, frey-face, ... or the absolute path of the user's file
    prev = check_folder(out, data, force=cfg.run.force)
    # fresh: never mix a user's files into the report; a folder the tour's manifest names is its own
    with run_folder(out_dir(out), name="tour", command="tour", fresh=True, resume=True,
                    force=cfg.run.force or prev is not None) as out:
        removed = remove_previous(out, prev)  # the previous tour's files: nothing of it mixed in or picked up
        folder = TourFolder(out, cfg, data)
        threads = torch.get_num_threads()
        torch.set_num_threads(cfg.threads)
        flush_first()  # the options and the folder are fine: say the device now, not after minutes of steps
        if removed and not cfg.run.quiet:
            log(f"probgen tour: {out} held a{'n' if prev['status'][0] in 'aeiou' else ''} {prev['status']} "
                f"{prev['data']} tour: its {len(removed)} files removed, starting afresh", file=sys.stdout)
        try:
            res = _tour(cfg, out, ds, page_sections, folder)
        except KeyboardInterrupt:
            folder.mark("interrupted")
            raise
        except BaseException:
            folder.mark("failed")
            raise
        finally:
            torch.set_num_threads(threads)
        folder.finish()
        return res


def _reference(profile: str) -> str:
    """Where profile ``profile``'s section times come from, in words."""
    ref = COST[profile]
    where = "2 idle CPU cores" if ref["device"] == "cpu" else "one GPU (guessed, not measured yet)"
    return f"{where} with {ref['images']} training images of {ref['pixels']} pixels"


def _tour(cfg: TourConfig, out: Path, ds, page_sections: dict, folder) -> TourResult:
    import torch

    from ..io import write_json
    from . import sections as S
    from .html import Report

    seed = cfg.run.seed
    seed_everything(seed)
    t_start, c_start = time.perf_counter(), time.process_time()
    t = Tour(cfg, ds, out, page_sections, folder)
    rep = Report("probgen tour: deep generative models as probabilistic programs",
                 subtitle=f"{t.ds.describe()}; seed {seed}; {t.profile_name} run "
                          f"on {describe_device(t.device, threads=cfg.threads)}",
                 intro=("One page, one data set, every family of the lecture. Each section trains a model "
                        "on the same training images, shows what it generates, and says what to look for. "
                        "Section 6 puts all of them in one table on the same test images."
                        if "faces" not in page_sections else
                        "Unlabelled grey-level faces: the VAE's pictures (the two-dimension traversal, the "
                        "code map) and its problems. The families that need labels or black-and-white "
                        "pixels are on the digits page (probgen tour).")
                       + (" This is a --quick run: the models are trained for a few epochs only, so "
                          "expect rough pictures; the full run (no --quick) takes about 2 minutes on 2 CPU cores "
                          "on the built-in digits."
                          if cfg.quick else ""))
    sections = {key: rep.section(key, title, INTRO[key]) for key, title in page_sections.items()}
    eta = Eta(estimate(t.profile_name, page_sections, n_train=t.n_train, pixels=ds.x_dim))
    t.say(f"probgen tour: {t.n_train} training images of {'×'.join(map(str, ds.shape))} pixels, "
          f"{len(t.ds.test)} test images, on {describe_device(t.device, threads=cfg.threads)}, profile "
          f"{t.profile_name}: about {duration(eta.total)} (an estimate: section times measured on "
          f"{_reference(t.profile_name)}, scaled to these images)")
    for key in page_sections:
        t.say(eta.section(key, page_sections[key]))
        (out / key).mkdir(exist_ok=True)
        seed_everything(seed)
        torch.manual_seed(seed)
        t.step(sections[key], "section", S.section(key), sections[key], t)  # looked up now: tests stub them
        eta.finished(key)

    wall, cpu = time.perf_counter() - t_start, time.process_time() - c_start
    rep.footer = (f"Written by probgen tour{' --quick' if cfg.quick else ''} in {wall:.0f} s wall on "
                  f"{describe_device(t.device, threads=cfg.threads)} ({cpu:.0f} s of CPU time; estimated "
                  f"{eta.total:.0f} s, profile {t.profile_name}). Checkpoints are in "
                  f"{t.models.name}/, every family's own output in the section folders, what the recipes "
                  f"printed in tour.log; the numbers are in report.json.")
    page = rep.write(out / "report.html")
    summary = {"data": {"name": ds.name, "shape": list(ds.shape), "binarized": ds.binarized, "n_train": len(ds.train),
                        "n_val": len(t.ds.val), "n_test": len(t.ds.test),
                        "unit": "nats per image (log probability mass)"},
               "seed": seed, "quick": bool(cfg.quick), "profile": t.profile, "profile_name": t.profile_name,
               "seconds": {"wall": round(wall, 1), "cpu": round(cpu, 1), "threads": torch.get_num_threads(),
                           "estimate": round(eta.total, 1),
                           "estimate_sections": {k: round(v, 1) for k, v in eta.estimates.items()}},
               "train_size": cfg.train_size,
               "sections": {key: {"title": page_sections[key], "ok": not sections[key].errors,
                                  "errors": sections[key].errors, **t.numbers[key]} for key in page_sections},
               "timings": t.timings}
    summary = with_device(summary, t.device, threads=cfg.threads)
    write_json(out / "report.json", summary)
    failed = [page_sections[k] for k in page_sections if sections[k].errors]
    line = (f"wrote {page} and {out / 'report.json'} in {duration(wall)} wall (estimated {duration(eta.total)})"
            + (f"; failed in part: {'; '.join(failed)}" if failed else "; every section succeeded"))
    return TourResult(Path(page), out / "report.json", summary, failed, [line])
