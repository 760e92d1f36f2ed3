"""Every experiment script must have a smoke test that runs it with --quick."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_experiment_script_has_a_smoke_test():
    scripts = sorted(p.stem for p in (ROOT / "experiments").glob("*.py") if not p.name.startswith("_"))
    assert scripts, "no experiment scripts found"
    missing = [s for s in scripts if not (ROOT / "tests" / "experiments" / f"test_{s}.py").is_file()]
    assert not missing, f"experiment scripts without tests/experiments/test_<name>.py: {missing}"
    for s in scripts:
        text = (ROOT / "tests" / "experiments" / f"test_{s}.py").read_text()
        # run_quick (tests/experiments/_run.py) passes --quick itself
        assert "--quick" in text or "run_quick(" in text, f"test_{s}.py must smoke-run the script with --quick"
