"""Run an experiment script in-process (import by path, call main(argv))."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_script(name: str, argv: list[str]) -> int:
    spec = importlib.util.spec_from_file_location(f"experiments_{name}", ROOT / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(argv)
