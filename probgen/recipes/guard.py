"""What a command checks before it works, written once for all commands (issue 19).

- :data:`BOUNDS` / :func:`check_sizes`: every size-like option of every recipe's config, with a bound
  derived from what one run may hold (images in one figure, lines of text, importance weights in memory);
  the message says the bound.
- :data:`NEEDS` / :func:`accepts` / :func:`check_kind` / :func:`check_checkpoint`: what a story must declare
  (its ``traits``) for each command, checked from the file's ``kind`` before anything is built and from the
  loaded model's own traits after; an unknown kind is refused.
- :data:`OUTPUTS` / :func:`outputs_of` / :func:`claim`: the files each command writes, so that every recipe
  (command line or Python) refuses to replace one without ``force`` (:func:`probgen.runs.claim_outputs`).
- :func:`check_choices`: option strings given through the API (``elbo="magic"``) checked against the
  ``choices`` their config field declares, as argparse does for the command line.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from pathlib import Path

from ..evaluate import MAX_NUM_SAMPLES

__all__ = ["MAX_IMAGES", "MAX_LINES", "MAX_TOKENS", "MAX_IMPORTANCE", "MAX_STEPS", "MAX_BEAM", "MAX_EPOCHS", "BOUNDS",
           "NEEDS", "accepts", "OUTPUTS", "COMMAND_OF", "count", "check_sizes", "check_kind", "check_checkpoint",
           "outputs_of", "claim", "check_choices", "max_weights", "recorded_code"]

#: images in one figure: a 100 × 100 grid (a 28×28 grid of that size is already 7.8 M pixels)
MAX_IMAGES = 10_000
#: lines of text one command writes
MAX_LINES = 10_000
#: tokens in one sentence (the decoder's loop, and the padding of a batch of sentences)
MAX_TOKENS = 1_000
#: importance samples K per example: the estimator's own bound, written once there
MAX_IMPORTANCE = MAX_NUM_SAMPLES
#: training steps of one run
MAX_STEPS = 10_000_000
#: beam width of text decoding (hypotheses × vocabulary logits per line and step)
MAX_BEAM = 100
#: passes over the data of one run (training, or a guide's refit)
MAX_EPOCHS = 1_000_000

_GRID = math.isqrt(MAX_IMAGES)


def max_weights() -> int:
    """Examples × importance samples whose log-weights (float64, a few arrays) fit the memory budget."""
    from ..data.safe import memory_budget

    return memory_budget() // 64


def count(flag: str, value, lo: int, hi: int | None = None, why: str = "") -> int:
    """``value`` as an int in ``lo..hi``; a one-line ``ValueError`` naming ``flag`` and the bound otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{flag} must be a whole number, got {value!r}")
    value = int(value)
    if value < lo:
        raise ValueError(f"{flag} must be >= {lo}, got {value}")
    if hi is not None and value > hi:
        raise ValueError(f"{flag} must be <= {hi}" + (f" ({why})" if why else "") + f", got {value}")
    return value


def _too_many(value, hi: int):
    """``value`` when it is a whole number above ``hi``, else ``None`` (skipped): the lower bound and the type are
    the trainer's to check, in the words ``Story.fit`` uses from Python too."""
    return value if isinstance(value, numbers.Integral) and value > hi else None


def _len(v) -> int:
    return len(v) if isinstance(v, (list, tuple)) else 1


#: config class name -> (flag, value of the config, lowest, highest, why the bound); ``None`` values skip; a
#: class's bounds hold for its subclasses too (``FitBase``: every family's config)
BOUNDS: dict[str, list] = {
    "SampleConfig": [("-n", lambda c: c.n, 1, MAX_IMAGES, "images in one grid")],
    "TraverseConfig": [("--steps", lambda c: c.steps, 2, _GRID, f"a steps × steps grid of at most {MAX_IMAGES} images")],
    "LatentMapConfig": [("--steps", lambda c: c.steps, 2, _GRID, f"a steps × steps grid of at most {MAX_IMAGES} images")],
    "InterpolateConfig": [("--steps", lambda c: c.steps, 2, MAX_IMAGES // 2 - 2,
                           f"two rows of steps + 2 images, at most {MAX_IMAGES}")],
    "StyleTransferConfig": [("--index (how many)", lambda c: _len(c.index), 1, MAX_IMAGES // 101,
                             "rows of 1 + classes images")],
    "WalkConfig": [("--n", lambda c: c.n, 2, MAX_IMAGES // 4 + 1, f"n - 1 walks of --steps images, at most {MAX_IMAGES // 2}"),
                   ("--steps", lambda c: c.steps, 2, MAX_IMAGES // 2, f"n - 1 walks of --steps images, at most {MAX_IMAGES // 2}"),
                   ("(--n - 1) × --steps", lambda c: (c.n - 1) * c.steps, 2, MAX_IMAGES // 2, "images per path")],
    "CompleteConfig": [("-n", lambda c: c.n, 1, MAX_IMAGES, "images in one grid"),
                       ("--index (how many)", lambda c: _len(c.index), 1, MAX_IMAGES, "images in one grid"),
                       ("images × (-n + 2)", lambda c: _len(c.index) * (c.n + 2), 1, MAX_IMAGES, "images in one grid"),
                       ("--rows", lambda c: c.rows, 0, None, "")],
    "JudgeConfig": [("-n", lambda c: c.n, 2, MAX_IMAGES * 10, "samples judged per model")],
    "WhyVAEConfig": [("-n", lambda c: c.n_show, 1, MAX_IMAGES, "images in one panel"),
                     ("--n-eval", lambda c: c.n_eval, 1, MAX_IMAGES * 10, "samples judged per model")],
    "GanToyConfig": [("--steps", lambda c: c.steps, 1, MAX_STEPS, "generator steps of one run"),
                     ("--snapshots", lambda c: c.snapshots, 1, 100, "panels in one figure"),
                     ("--eval-every", lambda c: c.eval_every, 1, None, "")],
    "PoemConfig": [("-n", lambda c: c.n, 1, MAX_LINES, "lines written at once"),
                   ("--lines", lambda c: c.lines, 1, MAX_LINES, "lines written at once"),
                   ("-n × --lines", lambda c: c.n * c.lines, 1, MAX_LINES, "lines written at once"),
                   ("--max-len", lambda c: c.max_len, 1, MAX_TOKENS, "tokens in one line"),
                   ("--beam", lambda c: c.beam, 1, MAX_BEAM, "hypotheses kept per line"),
                   ("--no-repeat", lambda c: c.no_repeat, 0, MAX_TOKENS, "tokens in one line")],
    "InterpolateTextConfig": [("--steps", lambda c: c.steps, 2, MAX_LINES, "lines written at once"),
                              ("--beam", lambda c: c.beam, 1, MAX_BEAM, "hypotheses kept per line"),
                              ("--no-repeat", lambda c: c.no_repeat, 0, MAX_TOKENS, "tokens in one line")],
    "SentenceVAEConfig": [("--max-len", lambda c: c.max_len, 0, MAX_TOKENS,
                           f"tokens per sentence; 0 keeps sentences up to {MAX_TOKENS}")],
    "DiagnoseConfig": [("--num-samples", lambda c: c.num_samples, 2, MAX_IMPORTANCE, "importance samples per point"),
                       ("--points × --num-samples", lambda c: (c.points or 1) * c.num_samples, 2, max_weights(),
                        "log-weights held in memory (a quarter of this machine's)"),
                       ("--draws", lambda c: c.draws, 1, MAX_IMPORTANCE, "guide draws per point"),
                       ("--chains", lambda c: c.chains, 1, 64, "NUTS chains"),
                       ("--nuts-samples", lambda c: c.nuts_samples, 2, MAX_IMPORTANCE, "NUTS draws per chain"),
                       ("--nuts-warmup", lambda c: c.nuts_warmup, 0, MAX_IMPORTANCE, "NUTS warm-up steps"),
                       ("--sbc", lambda c: c.sbc, 0, MAX_IMPORTANCE, "calibration simulations"),
                       ("--sbc-draws", lambda c: c.sbc_draws, 1, MAX_IMPORTANCE, "guide draws per simulation")],
    "CompareConfig": [("--num-samples", lambda c: c.num_samples, 1, MAX_IMPORTANCE, "importance samples per point"),
                      ("--epochs", lambda c: _too_many(c.epochs, MAX_EPOCHS), 0, MAX_EPOCHS, "passes over the data"),
                      ("--refit-guide", lambda c: c.refit_guide, 0, MAX_EPOCHS, "epochs of the guide's refit"),
                      ("--refit-k", lambda c: c.refit_k, 1, MAX_IMPORTANCE, "samples of z per example and step"),
                      ("--refine", lambda c: c.refine, 0, MAX_IMPORTANCE, "Adam steps per test example")],
    **{name: [("--num-particles", lambda c: c.num_particles, 1, MAX_IMPORTANCE, "samples of z per example and step")]
       for name in ("VAEConfig", "CVAEConfig", "HVAEConfig")},
    "StoryConfig": [("--num-samples", lambda c: c.num_samples, 0, MAX_IMPORTANCE, "importance samples per point"),
                    ("--epochs", lambda c: c.epochs, 0, MAX_EPOCHS, "passes over the data")],  # before its file runs
    "FitBase": [("--epochs", lambda c: _too_many(c.epochs, MAX_EPOCHS), 0, MAX_EPOCHS, "passes over the data")],
}


def check_sizes(cfg) -> None:
    """Every bound :data:`BOUNDS` lists for ``cfg``'s class (and option strings, :func:`check_choices`).

    :raises ValueError: one line naming the option, its bound and the value given.
    """
    bounds = [b for cls in type(cfg).__mro__ for b in BOUNDS.get(cls.__name__, ())]  # FitBase's for every family
    for flag, get, lo, hi, why in bounds:
        if callable(hi):
            hi = hi()
        value = get(cfg)
        if value is not None:
            count(flag, value, lo, hi, why)
    check_choices(cfg)


def _flag(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def check_choices(cfg, prefix: str = "") -> None:
    """Every string option of config dataclass ``cfg`` (nested ones too) lies in its declared ``choices``, every
    number in its declared ``bounds``.

    :raises ValueError: ``--elbo 'magic': use one of meanfield, trace, ...``; ``--threads must be <= 1024 ...``.
    """
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            check_choices(value)
            continue
        choices = f.metadata.get("choices")
        if choices and value is not None and value not in choices:
            raise ValueError(f"{_flag(f)} {value!r}: use one of {', '.join(map(str, choices))}")
        bounds = f.metadata.get("bounds")  # a range declared on the field (opt(bounds=...))
        if bounds and value is not None:
            count(_flag(f), value, *bounds)


# -- which families each command takes -----------------------------------------------------------
def _pictures(t) -> bool:
    return "text" not in t.offers


def _coder(t) -> bool:
    return {"encode", "decode"} <= t.offers and _pictures(t)


def _diagnosable(t) -> bool:
    return t.guide or "responsibilities" in t.offers


def _no_guide(t) -> str:
    if t.estimator == "parzen":
        return "it has no guide q(z | x) and no likelihood to weigh its draws by"
    if t.estimator == "exact" and "text" in t.offers:
        return "it is a plain language model (no latent code: its log-likelihood is exact, there is no guide)"
    if t.estimator == "exact":
        return "it has no latent variables (its log-likelihood is exact), so there is no guide to diagnose"
    return "its codes are point estimates: there is no guide distribution to diagnose"


def _no_walk(t) -> str:
    if "text" in t.offers:
        return "its codes decode to sentences, not images (use interpolate-text)"
    if "decode" not in t.offers:
        return "it has no code space to walk"
    return "its decoder needs a label too; traverse and interpolate take --label"


#: command -> (what a story must be to be used: a test on its :class:`probgen.story.Traits`, why one is
#: refused: a line, or a function of the traits giving it); read from the traits, never from a family name
NEEDS: dict[str, tuple] = {
    "sample": (lambda t: True, ""),
    "traverse": (_coder, "it has no encoder and decoder of images"),
    "latent-map": (_coder, "it has no encoder and decoder of images"),
    "interpolate": (_coder, "it has no encoder and decoder of images"),
    "style-transfer": (lambda t: "transfer" in t.offers, "it cannot redraw a style as another label"),
    "walk": (lambda t: "decode" in t.offers and not t.labels and _pictures(t), _no_walk),
    "complete": (lambda t: "complete" in t.offers, "it cannot complete images"),
    "gan-eval": (_pictures, "it draws sentences, not images"),
    "problems": (lambda t: _coder(t) and "sample_mean" in t.offers, "it has no decoder mean images"),
    "poem": (lambda t: "text" in t.offers, "it does not write text"),
    "interpolate-text": (lambda t: "text" in t.offers and "decode" in t.offers, "it has no code to decode into text"),
    "diagnose": (_diagnosable, _no_guide),
}


def _story_classes() -> dict:
    """kind -> class of every built-in story (probgen's own, not the user's)."""
    from ..models import _import_all
    from ..story import REGISTRY

    _import_all()
    return {kind: cls for kind, cls in REGISTRY.items() if cls.__module__.startswith("probgen.") and kind != "story"}


def accepts(command: str) -> tuple[str, ...]:
    """The built-in kinds ``command`` takes (their declared traits pass its test in :data:`NEEDS`)."""
    test = NEEDS[command][0]
    return tuple(kind for kind, cls in _story_classes().items() if test(cls.traits))


#: config class name -> its command (the recipes check the model they loaded against :data:`NEEDS`)
COMMAND_OF = {"SampleConfig": "sample", "TraverseConfig": "traverse", "LatentMapConfig": "latent-map",
              "InterpolateConfig": "interpolate", "StyleTransferConfig": "style-transfer", "WalkConfig": "walk",
              "CompleteConfig": "complete", "JudgeConfig": "gan-eval", "ProblemsConfig": "problems",
              "PoemConfig": "poem", "InterpolateTextConfig": "interpolate-text", "DiagnoseConfig": "diagnose"}


def check_kind(command, model, path="") -> None:
    """Refuse a model ``command`` (a name, or its config) cannot use, from its declared traits, naming the
    built-in kinds it takes.

    :param model: a loaded story (its own traits: a constructor argument may change them), or a kind name
        (its class's traits).
    :raises ValueError: one line; also for a kind no story registers.
    """
    from ..story import REGISTRY

    command = COMMAND_OF.get(type(command).__name__, command) if not isinstance(command, str) else command
    if command not in NEEDS:
        return
    if isinstance(model, str):
        _story_classes()
        if model not in REGISTRY:
            raise ValueError(f"{path}: unknown model kind {model!r} (known: {', '.join(sorted(_story_classes()))})")
        kind, traits = model, REGISTRY[model].traits
    else:
        kind, traits = model.kind, model.traits
    test, why = NEEDS[command]
    if test(traits):
        return
    why = why(traits) if callable(why) else why
    a = "an" if kind[:1] in "aeiou" else "a"
    raise ValueError(f"{path}: {command} cannot use {a} {kind} checkpoint: {why}; it takes {', '.join(accepts(command))}")


def recorded_code(payload: dict) -> tuple[dict | None, dict | None]:
    """What a checkpoint records of the user's code: ``(program, source)``, the record of a wrapped Pyro
    program (:class:`probgen.adapt.PyroProgram`) and where its file or the Story subclass's file is (each
    ``None`` when absent: a built-in model has neither)."""
    from ..adapt import PyroProgram

    extra = payload.get("extra") or {}
    program = extra.get(PyroProgram.kind)  # adapt records a wrapped program under its wrapper's kind
    return program, extra.get("story_source") or (program or {}).get("source")


def check_checkpoint(command: str, path) -> None:
    """:func:`check_kind` from the file's recorded ``kind`` (read without building the model). A file holding
    the user's own story is checked after loading (its class is in the user's file, not yet imported)."""
    if command not in NEEDS or not Path(path).is_file():
        return  # a missing file is reported by the loader, in its words
    from ..io import load_checkpoint

    payload = load_checkpoint(path)
    if any(part is not None for part in recorded_code(payload)):
        return
    check_kind(command, str(payload.get("kind")), path)


# -- which files each command writes -----------------------------------------------------------
def _png(name: str):
    """``--out`` as the command's PNG: the file itself, or a folder that receives ``name``."""
    from ..runs import output_file

    return lambda c: output_file(c.out, name)


def _beside(png: Path, *suffixes: str) -> list[Path]:
    stem = str(png.with_suffix(""))
    return [Path(stem + x) for x in suffixes]


def _in_run(*names: str):
    return lambda c: [Path(c.run.out) / n for n in names]


def _run_file(c, *names: str) -> list[Path]:
    """The checkpoints of models ``names`` in the run folder (:func:`probgen.io.run_files`)."""
    from ..io import run_files

    return [run_files(c.run.out, name).checkpoint for name in names]


def _why_vae_models(c) -> list[Path]:
    """The checkpoints ``why-vae`` trains: a VAE and an auto-encoder."""
    from ..models import VAE, AutoEncoder

    return _run_file(c, VAE.kind, AutoEncoder.kind)


#: command -> the files it writes, from its config (``out``: a file or a folder, default ``runs/<command>/``;
#: ``run.out``: the folder of commands that write several files)
OUTPUTS: dict = {
    "sample": lambda c: [_png("samples.png")(c), c.npy],
    "traverse": lambda c: [_png("traverse.png")(c), c.npy],
    "interpolate": lambda c: [_png("interpolate.png")(c), c.npy],
    "style-transfer": lambda c: [_png("style_transfer.png")(c), c.npy],
    "latent-map": lambda c: [_png("latent_map.png")(c), c.npy, *_beside(_png("latent_map.png")(c), "_scatter.png")],
    "walk": lambda c: [_png("walk.png")(c), *_beside(_png("walk.png")(c), "_linear.png", "_spherical.png", ".json")],
    "complete": lambda c: [_png("complete.png")(c), c.npy],
    "gan-eval": _in_run("eval.json", "class_histograms.png"),
    "why-vae": lambda c: _in_run("why_vae.png", "why_vae.json")(c) + _why_vae_models(c)
    + (_in_run("why_vae_samples.npz")(c) if c.npy else []),
    "gan-toy": lambda c: _in_run("toy.png", "toy.json", "toy_wasserstein.png")(c) + _run_file(c, "toy_gan"),
    "problems": _in_run("blur.png", "nearest.png", "distances.png", "problems.json"),
    "diagnose": _in_run("summary.json", "khat.png", "diagnostics.nc", "responsibilities.png", "sbc.png", "collapse.png"),
}
#: configs of commands that read no checkpoint (not in :data:`COMMAND_OF`) but write files
_WRITERS = {"WhyVAEConfig": "why-vae", "GanToyConfig": "gan-toy"}


def outputs_of(cfg) -> list[Path]:
    """The files the command of config ``cfg`` would write (empty for a config not in :data:`OUTPUTS`)."""
    name = type(cfg).__name__
    fn = OUTPUTS.get(COMMAND_OF.get(name) or _WRITERS.get(name, ""))
    return [Path(p) for p in fn(cfg) if p is not None and str(p)] if fn else []


def claim(cfg) -> list[Path]:
    """The output policy of every recipe that writes named files, from the command line or from Python: the
    files of :func:`outputs_of`, each refused when it exists unless the config's ``force`` (``--force``).

    :return: those files, the main one first (the figure or the first file of the folder).
    :raises ValueError: one line naming the first file that exists, or an ``--out`` of the wrong kind.
    """
    from ..runs import claim_outputs

    paths = outputs_of(cfg)
    force = getattr(cfg, "force", None)
    claim_outputs(paths, force=bool(cfg.run.force if force is None else force))
    return paths
