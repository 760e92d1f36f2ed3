"""Argparse helpers shared by every command: flags built from the recipes' config dataclasses.

Conventions: ``--data``, ``--data-dir``, ``--binarize``, ``--seed``, ``--device``, ``--out``;
a config field ``z_dim`` is the flag ``--z-dim``; its default and help come from the dataclass
(:func:`probgen.recipes.config.opt`), never from a second literal here.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys

__all__ = [
    "EXIT_USAGE", "CLIError", "ArgumentParser", "add_config_args", "config_from", "add_data_args",
    "add_run_args", "add_fit_args", "int_list", "whole_number", "INT64", "add_recipe", "run_recipe", "data_given",
    "TRAINERS", "name_first",
]

EXIT_USAGE = 2


class CLIError(Exception):
    """A problem with the user's arguments or files: printed as one line, exit code 2."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad argument as one line (exit 2) instead of usage + error."""

    def error(self, message: str):
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        sys.exit(EXIT_USAGE)


def int_list(text: str) -> tuple[int, ...]:
    """argparse type: ``"256,128"`` → ``(256, 128)``."""
    from ..recipes.config import parse_int_list as parse

    try:
        return parse(text, "")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


#: what an int flag holds at most: a 64-bit integer, so that no value overflows inside torch or NumPy (a flag's
#: own range, ``opt(bounds=...)``, is checked by its recipe: the same line from Python and from here)
INT64 = (-2**63, 2**63 - 1)


def whole_number(text: str) -> int:
    """argparse type of every int flag: a whole number that fits in 64 bits (argparse names the flag in its
    one-line error: ``argument --seed: must lie in -9223372036854775808..9223372036854775807 ...``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not INT64[0] <= value <= INT64[1]:
        raise argparse.ArgumentTypeError(f"must lie in {INT64[0]}..{INT64[1]} (a 64-bit integer), got {value}")
    return value


def _field_default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _arg_type(f: dataclasses.Field, default):
    """The argparse ``type`` of a field from its annotation (a string under postponed evaluation)."""
    # a class (a config written without ``from __future__ import annotations``) by its name, else the string
    text = (f.type.__name__ if isinstance(f.type, type) else str(f.type)).replace("typing.", "").replace(" ", "")
    text = text.replace("|None", "").replace("Optional[", "").rstrip("]") if "None" in text else text
    if text.startswith("tuple[int") or text.startswith("Sequence[int"):
        return int_list
    if text.startswith("list"):
        return whole_number if (default and all(isinstance(v, int) for v in default)) or "int" in text else str
    return {"int": whole_number, "float": float, "str": str}.get(text)


def add_config_args(p, cls, *, suppress: bool = False, skip=(), only=None, defaults: dict | None = None,
                    title: str | None = None, show_defaults: bool = True) -> None:
    """Add one flag per field of dataclass ``cls`` to parser ``p`` (fields already there are kept).

    :param suppress: leave absent flags out of the namespace (``argparse.SUPPRESS``), so that a
        subcommand's copy never overwrites the parent's value and :func:`config_from` fills the
        dataclass default.
    :param skip: / :param only: field names to leave out / to keep.
    :param defaults: defaults that differ from the dataclass's (e.g. ``{"out": "runs/compare"}``).
    :param show_defaults: end each help with "(default: ...)".
    """
    defaults = defaults or {}
    group = p.add_argument_group(title) if title else p
    for f in dataclasses.fields(cls):
        if f.name in skip or (only is not None and f.name not in only):
            continue
        default = defaults.get(f.name, _field_default(f))
        if dataclasses.is_dataclass(default) or str(f.type).split(" ")[0] in ("DataConfig", "RunConfig"):
            continue  # a nested config: its fields are added by their own call
        meta = f.metadata
        flag = meta.get("flag") or "--" + f.name.replace("_", "-")
        if flag in p._option_string_actions:
            continue
        hidden = default is None or default is False or (isinstance(default, (list, tuple, str)) and not default)
        shown = "" if hidden or not show_defaults else f" (default: {default})"
        kw: dict = {"dest": f.name, "default": argparse.SUPPRESS if suppress else default,
                    "help": (meta.get("help") or "") + shown}
        flags = [flag] + ([meta["short"]] if meta.get("short") else [])
        if isinstance(default, bool) or str(f.type) == "bool":
            group.add_argument(*flags, action="store_true", **kw)
            if meta.get("negate"):
                group.add_argument(meta["negate"], dest=f.name, action="store_false",
                                   default=argparse.SUPPRESS, help=f"the opposite of {flag}")
            continue
        arg_type = _arg_type(f, default)
        if arg_type is not None:
            kw["type"] = arg_type
        for key in ("choices", "nargs", "metavar"):
            if meta.get(key) is not None:
                kw[key] = meta[key]
        group.add_argument(*flags, **kw)


def config_from(cls_or_cfg, args, **overrides):
    """A config from parsed ``args``: fields present in the namespace, the dataclass defaults (or the
    given instance's values) for the rest, nested configs filled the same way, then ``overrides``."""
    cfg = cls_or_cfg() if isinstance(cls_or_cfg, type) else cls_or_cfg
    given = vars(args)
    changes = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if f.name in overrides:
            changes[f.name] = overrides[f.name]
        elif dataclasses.is_dataclass(value):
            changes[f.name] = config_from(value, args)
        elif f.name in given:
            changes[f.name] = given[f.name]
    return dataclasses.replace(cfg, **changes)


def data_given(args):
    """The ``--data ...`` flags as a DataConfig, or None when none was given (then a command that reads a
    checkpoint uses the data it was trained on; with only ``--data-dir``, that data in that folder)."""
    from ..recipes.config import DataConfig

    given = {f for f in ("data", "data_dir", "binarize", "continuous", "download") if f in vars(args)}
    return config_from(DataConfig, args, data=getattr(args, "data", None)) if given else None


def add_data_args(p, *, suppress: bool = False, default: str | None = None, binarize_default: bool | None = None):
    """``--data NAME|PATH``, ``--data-dir DIR``, ``--binarize/--no-binarize``, ``--continuous``, ``--download``."""
    from ..recipes.config import DataConfig

    defaults = {k: v for k, v in (("data", default), ("binarize", binarize_default)) if v is not None}
    add_config_args(p, DataConfig, suppress=suppress, defaults=defaults, skip=("seed",), title="data")


def add_run_args(p, *, out: str | None = None, suppress: bool = False):
    """``--seed``, ``--device``, ``--out`` (when ``out`` is given: its default), ``--quiet``."""
    from ..recipes.config import RunConfig

    add_config_args(p, RunConfig, suppress=suppress, skip=() if out else ("out",), defaults={"out": out})


def add_fit_args(p, *, cls=None, suppress: bool = False, fit=None, **defaults):
    """The SVI trainer's flags (``--epochs --batch-size --lr --patience --resume --clip-norm --distributed``).

    :param fit: a ``FitConfig`` instance whose values are the defaults (a recipe's own, e.g. why-vae's
        ``FitConfig(epochs=100)``), so that no default is written a second time here.
    """
    from ..recipes.config import FitConfig

    if fit is not None:
        defaults = {**{f.name: getattr(fit, f.name) for f in dataclasses.fields(fit)}, **defaults}
    add_config_args(p, cls or FitConfig, suppress=suppress, defaults=defaults, title="training",
                    only=[f.name for f in dataclasses.fields(FitConfig)])


def add_recipe(sub, name: str, config, recipe, *, help: str, description: str, positional=()):
    """One command = one recipe: positional arguments ``(name, help, nargs)`` first, then one flag per
    field of the ``config`` dataclass; running it calls ``recipe(config)`` and prints the result's ``lines``."""
    p = sub.add_parser(name, help=help, description=description)
    for arg, arg_help, nargs in positional:
        p.add_argument(arg, help=arg_help, nargs=nargs)
    add_config_args(p, config, skip=tuple(arg for arg, _, _ in positional))
    p.set_defaults(func=run_recipe, config=config, recipe=recipe)
    return p


def run_recipe(args) -> int:
    """Build the command's config from ``args``, run its recipe, print what it reports."""
    print("\n".join(args.recipe(config_from(args.config, args)).lines))
    return 0


def name_first(argv: list[str], at: int, names, parsers) -> list[str]:
    """Move the first word of ``argv[at:]`` that is one of ``names`` (never an option's value, never after
    ``--``) to position ``at``: ``[OPTIONS] COMMAND`` → ``COMMAND [OPTIONS]`` (``at`` = 0), ``train [OPTIONS]
    MODEL`` → ``train MODEL [OPTIONS]`` (``at`` = 1). ``parsers``: those whose options may come first.
    """
    takes_value = {flag for parser in parsers for flag, action in parser._option_string_actions.items()
                   if action.nargs != 0}
    i = at
    while i < len(argv) and argv[i] != "--":
        if argv[i] in names:
            return [*argv[:at], argv[i], *argv[at:i], *argv[i + 1:]]
        i += 2 if argv[i] in takes_value else 1
    return argv


# -- `probgen train MODEL` ------------------------------------------------------------------------
TRAINERS: dict = {}  # name -> registry entry, filled by `probgen train` (probgen.recipes.models.MODELS)
_TRAIN_SUBPARSERS: list = []
