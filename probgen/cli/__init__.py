"""The ``probgen`` command line.

One module per family of commands (``spine``, ``vae_family``, ``pixel``, ``gan``, ``text``,
``diagnose``, ``story``, ``tour``); each has ``register(subparsers)``. Heavy imports
happen inside the command functions, so ``probgen --help`` is quick.

Errors the user can fix (bad arguments, missing or bad files, an exception in the user's own story) print
one line and exit 2; with ``PROBGEN_DEBUG=1`` in the environment the traceback is printed above that line.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys

from .common import EXIT_USAGE, CLIError, ArgumentParser, name_first

__all__ = ["main", "build_parser", "command_first", "COMMAND_MODULES"]

COMMAND_MODULES = ("spine", "vae_family", "pixel", "gan", "text", "diagnose", "story", "tour")


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
    from ..recipes.guard import OUTPUTS

    for name, p in sub.choices.items():  # commands that write named files replace them only with --force
        if name in OUTPUTS and "--force" not in p._option_string_actions:
            p.add_argument("--force", action="store_true", help="replace the files this command writes if they exist")
    return parser


def command_first(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """``[OPTIONS] COMMAND [ARGS]`` → ``COMMAND [OPTIONS] [ARGS]``: options may come before the command
    too (``probgen --seed 1 compare``); a value of an option is never taken for the command."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return name_first(argv, 0, sub.choices, sub.choices.values())


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``probgen`` console script."""
    from .spine import model_first

    parser = build_parser()
    argv = command_first(parser, list(sys.argv[1:] if argv is None else argv))
    args = parser.parse_args(model_first(argv))
    try:
        from ..io import read_once
        from ..recipes.config import device_announced

        # each checkpoint is read from disk once per command (checks, data spec, model); the first device
        # the command resolves is its first line (recipes.config.resolve_device)
        with read_once(), device_announced():
            _check_paths(args)
            code = args.func(args)
    except BrokenPipeError:  # `probgen ... | head`: the reader left; stop quietly, as Unix tools do
        _silence_stdout()
        return 141  # 128 + SIGPIPE, what a shell reports for a tool stopped by a closed pipe
    except (CLIError, ValueError, OSError) as e:
        if os.environ.get("PROBGEN_DEBUG"):  # the whole story behind the line (a user's story's own traceback)
            import traceback

            traceback.print_exception(e, file=sys.stderr)
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if isinstance(e, OSError) and e.errno is not None:
            msg = os_message(e)
        _say(f"probgen {args.command}: error: {msg}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _say(f"probgen {args.command}: interrupted (checkpoints on disk are complete)")
        return 130
    except Exception as e:  # noqa: BLE001
        from ..infer.callbacks import DivergenceError

        if isinstance(e, DivergenceError):
            _say(f"probgen {args.command}: error: {e}")
            return 1
        raise
    return int(code or 0)


#: arguments that name files a command reads / writes (an output must never be one of its inputs)
_INPUT_ARGS = ("checkpoint", "checkpoints", "data", "src", "dst", "story", "first", "second", "compare")
_OUTPUT_ARGS = ("out", "npy")

#: errno -> what the user can do about it
_OS_ADVICE = {
    errno.ENOSPC: "no space left on the device; free some space or choose another --out",
    errno.EDQUOT: "disk quota exceeded; free some space or choose another --out",
    errno.EROFS: "read-only file system; choose another --out",
    errno.EACCES: "permission denied; check the permissions or choose another --out",
    errno.EPERM: "operation not permitted; check the permissions or choose another --out",
    errno.ENAMETOOLONG: "file name too long; choose a shorter path",
    errno.ELOOP: "too many levels of symbolic links; give the real path",
    errno.EMFILE: "too many open files; close some programs and retry",
    errno.ENOENT: "no such file or folder",
    errno.ENOTDIR: "a part of the path is not a folder",
    errno.EISDIR: "is a folder; give a file",
    errno.EIO: "input/output error; check the disk",
}


def os_message(e: OSError) -> str:
    """One line for a failing environment: the path, what happened, what to do (no partial file is left:
    every output goes through the atomic writer)."""
    what = _OS_ADVICE.get(e.errno, f"{e.strerror or os.strerror(e.errno)}")
    return f"{e.filename}: {what}" if e.filename else what


def _check_paths(args) -> None:
    from ..io import check_outputs

    def values(names):
        for name in names:
            v = getattr(args, name, None)
            yield from (v if isinstance(v, (list, tuple)) else [v])

    inputs = [v for v in values(_INPUT_ARGS) if isinstance(v, str) and v]
    outputs = [v for v in values(_OUTPUT_ARGS) if isinstance(v, str) and v and not os.path.isdir(v)]
    check_outputs(outputs, inputs)
    from ..recipes.guard import check_checkpoint

    for path in values(("checkpoint", "checkpoints")):  # the family, from the file, before anything is built
        if isinstance(path, str) and path:
            check_checkpoint(args.command, path)
    # nothing is replaced without --force: each recipe claims its files (probgen.recipes.guard.claim), so
    # probgen.recipes.<command>(config) from Python follows the same policy


def _say(line: str) -> None:
    """Print to stderr if there is one (``2>&-`` closes it; a broken stderr is not worth a traceback)."""
    if sys.stderr is None:
        return
    try:
        print(line, file=sys.stderr)
    except (OSError, ValueError):
        pass


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


if __name__ == "__main__":
    sys.exit(main())
