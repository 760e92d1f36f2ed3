"""Run an experiment script in-process (import by path, call main(argv))."""
import importlib.util
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def script_module(name: str):
    """``experiments/<name>.py`` imported as a module (its helpers, without running it)."""
    spec = importlib.util.spec_from_file_location(f"experiments_{name}", ROOT / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(name: str, argv: list[str]) -> int:
    """Import ``experiments/<name>.py`` and return ``main(argv)``; scripts may change the torch
    thread count, so it is restored afterwards."""
    module = script_module(name)
    threads = torch.get_num_threads()
    try:
        return module.main(argv)
    finally:
        torch.set_num_threads(threads)


def run_quick(name: str, tmp_path: Path, data_dir, *extra: str) -> tuple[int, Path, list[str]]:
    """``--quick`` run of a resumable experiment (``--out``/``--work`` under ``tmp_path``, then ``extra``):
    returns ``(exit code, results folder, the quick argv without extra)`` for later invocations."""
    out = tmp_path / "results"
    argv = ["--quick", "--data-dir", str(data_dir), "--out", str(out), "--work", str(tmp_path / "work"), "--quiet"]
    return run_script(name, argv + list(extra)), out, argv
