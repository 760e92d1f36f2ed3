"""``probgen train``, ``probgen compare`` and ``probgen sample``: parse, build a config, call the
recipe (:mod:`probgen.recipes`), print.

Options anywhere: :func:`model_first` moves MODEL right after ``train`` before parsing, and every
``train MODEL`` has the shared flags (data, run, training) besides its own, so ``probgen train vae
--out DIR`` and ``probgen train --out DIR vae`` are the same command. ``train`` itself keeps the
shared flags for ``--story`` (with ``argparse.SUPPRESS`` everywhere, absent flags take the
config dataclass's default).
"""
from __future__ import annotations

from . import common
from .common import CLIError, add_config_args, config_from

__all__ = ["register", "cmd_train", "cmd_compare", "cmd_sample", "model_first"]

_TRAIN_PARSER: list = []  # the `train` parser, for model_first


def register(sub) -> None:
    from ..recipes.config import DataConfig, FitConfig, RunConfig
    from ..recipes.models import MODELS, load_families
    from ..recipes.story import StoryConfig
    from ..recipes.train import TrainConfig

    out = {"out": TrainConfig().run.out}  # the recipe's default, written once there
    load_families()  # imports every family's recipe module, so that MODELS is complete
    # -- train ------------------------------------------------------------------
    p = sub.add_parser("train", help="train one model and write OUT/<model>.pt",
                       description="Train a model. `probgen train MODEL --help` lists a model's flags; "
                                   "the shared flags go before or after MODEL.")
    add_config_args(p, RunConfig, suppress=True, defaults=out)
    add_config_args(p, StoryConfig, suppress=True, title="with --story (your own Story subclass)",
                    only=("story", "story_args", "story_name", "elbo", "labels", "num_samples"))
    add_config_args(p, DataConfig, suppress=True, title="data")
    add_config_args(p, FitConfig, suppress=True, show_defaults=False,
                    title="training (defaults: see probgen train MODEL --help)")
    models = p.add_subparsers(dest="model", metavar="MODEL", parser_class=common.ArgumentParser)
    # replace, not append: main() may build the parser more than once in one process (tests, notebooks)
    common._TRAIN_SUBPARSERS[:] = [models]
    common.TRAINERS.clear()
    for name, spec in MODELS.items():
        m = models.add_parser(name, help=spec.help, description=spec.help)
        add_config_args(m, RunConfig, suppress=True, defaults=out)
        text = spec.load is not None  # a text family: its corpus is its own flag, only --data-dir applies
        add_config_args(m, DataConfig, suppress=True, title="data", defaults=spec.data_defaults,
                        only=("data_dir", "seed") if text else None)
        add_config_args(m, spec.config, suppress=True, title="model and training")
        common.TRAINERS[name] = spec
    p.set_defaults(func=cmd_train)
    _TRAIN_PARSER[:] = [p]

    # -- compare ----------------------------------------------------------------
    from ..recipes.compare import CompareConfig

    c = sub.add_parser("compare", help="train (or load) several models and compare test log-likelihoods",
                       description="GMM vs VAE (and other families) on the same test set, one table: log p(x) "
                                   "in nats per image (for the CVAE the marginal log Σ_y p(y) p(x|y)), with "
                                   "its estimator and K.")
    add_config_args(c, DataConfig, title="data")
    add_config_args(c, RunConfig, defaults={"out": CompareConfig().run.out})
    add_config_args(c, CompareConfig)
    c.set_defaults(func=cmd_compare)

    # -- sample -----------------------------------------------------------------
    from ..recipes.train import SampleConfig

    s = sub.add_parser("sample", help="draw samples from a checkpoint into a PNG grid")
    s.add_argument("checkpoint", help="a .pt file written by probgen")
    add_config_args(s, SampleConfig, skip=("checkpoint",))
    s.set_defaults(func=cmd_sample)


def model_first(argv: list[str]) -> list[str]:
    """``train [OPTIONS] MODEL [OPTIONS]`` → ``train MODEL [OPTIONS] [OPTIONS]``, so that a model's own
    flags (``--z-dim``) may come before its name too; a value of an option is never taken for MODEL."""
    if not argv or argv[0] != "train" or not _TRAIN_PARSER or not common._TRAIN_SUBPARSERS or any(
            a == "--story" or a.startswith("--story=") for a in argv):
        return argv  # --story takes no MODEL (cmd_train says so)
    models = common._TRAIN_SUBPARSERS[0].choices
    return common.name_first(argv, 1, models, (_TRAIN_PARSER[0], *models.values()))


def cmd_train(args) -> int:
    from ..recipes import DataConfig
    from ..recipes.models import model_spec
    from ..recipes.train import TrainConfig, train

    model = getattr(args, "model", None)
    if getattr(args, "story", None):
        from .story import run_story_train

        if model:
            raise CLIError(f"--story trains your own story: leave out the model name {model!r}")
        return run_story_train(args)
    if not model:
        raise CLIError(f"choose a model: {', '.join(common.TRAINERS)} (or --story FILE.py:Class)")
    spec = model_spec(model)
    data = config_from(DataConfig(**(spec.data_defaults or {})), args)
    run = config_from(TrainConfig().run, args)
    result = train(TrainConfig(model, config_from(spec.config, args), data, run))
    for line in result.notes:
        print(line)
    print(result.line(model))
    return 0


def cmd_compare(args) -> int:
    from ..recipes.compare import CompareConfig, compare

    res = compare(config_from(CompareConfig, args))
    ds = res.dataset
    print(f"data: {ds.describe()}")
    print("unit: " + ("log probability mass (nats/image) of binary data" if ds.binarized
                      else "log density (nats/image) of dequantized data"))
    print("\n" + res.table())
    if "published" in res.result:
        print("\npublished test NLL on this split (nats, lower is better):")
        for entry in res.result["published"]:
            print(f"  {entry['model']:<40} {entry['nll']:>7.2f}   {entry['binarization']:<8} {entry['source']}")
    if res.elpd_text is not None:
        print("\nelpd comparison (ArviZ, held-out pointwise log-lik):")
        print(res.elpd_text)
    print(f"\nwrote {res.json_path}, checkpoints and figures in {res.out}/")
    return 0


def cmd_sample(args) -> int:
    from ..recipes.train import SampleConfig, sample

    res = sample(config_from(SampleConfig, args))
    if res.path is None:  # text models, printed
        print("\n".join(res.samples))
        return 0
    if isinstance(res.samples, list):  # text models, written to --out FILE.txt
        print(f"wrote {len(res.samples)} sentences from {args.checkpoint} to {res.path}")
        return 0
    print(f"wrote {args.n} samples from {args.checkpoint} to {res.path}" + (f" and {args.npy}" if args.npy else ""))
    return 0
