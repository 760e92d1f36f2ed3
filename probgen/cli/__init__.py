"""The ``probgen`` command line.

One module per family of commands (``spine``, ``vae_family``, ``pixel``, ``gan``, ``text``,
``diagnose``, ``story``, ``tour``); each has ``register(subparsers)``. Heavy imports
happen inside the command functions, so ``probgen --help`` is quick.

Errors the user can fix (bad arguments, missing or bad files) print one line and exit 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from .common import EXIT_USAGE, CLIError, ArgumentParser

__all__ = ["main", "build_parser", "command_first", "COMMAND_MODULES"]

COMMAND_MODULES = ("spine", "vae_family", "pixel", "gan", "text", "diagnose", "story", "tour", "scale")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = ArgumentParser(prog="probgen", description="Deep generative models as probabilistic programs.")
    parser.add_argument("--version", action="version", version=f"probgen {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    sub.required = True
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as e:
            if e.name == f"{__name__}.{name}":
                continue  # that family's commands are not installed yet
            raise
        module.register(sub)
    return parser


def command_first(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """``[OPTIONS] COMMAND [ARGS]`` → ``COMMAND [OPTIONS] [ARGS]``: options may come before the command
    too (``probgen --seed 1 compare``); a value of an option is never taken for the command."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    takes_value = {flag for p in sub.choices.values() for flag, action in p._option_string_actions.items()
                   if action.nargs != 0}
    i = 0
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "--":
        i += 2 if argv[i] in takes_value else 1
    if 0 < i < len(argv) and argv[i] in sub.choices:
        return [argv[i], *argv[:i], *argv[i + 1:]]
    return argv


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``probgen`` console script."""
    from .spine import model_first

    parser = build_parser()
    argv = command_first(parser, list(sys.argv[1:] if argv is None else argv))
    args = parser.parse_args(model_first(argv))
    try:
        code = args.func(args)
    except (CLIError, ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
            PermissionError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if isinstance(e, (FileNotFoundError, PermissionError)) and e.filename and str(e.filename) not in msg:
            msg = f"{msg}: {e.filename}"
        print(f"probgen {args.command}: error: {msg}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"probgen {args.command}: interrupted (checkpoints on disk are complete)", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001
        from ..infer.callbacks import DivergenceError

        if isinstance(e, DivergenceError):
            print(f"probgen {args.command}: error: {e}", file=sys.stderr)
            return 1
        raise
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
