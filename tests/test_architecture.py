"""The shape we hold to (docs/architecture.md), checked: layers import downwards only, no file
over 500 lines, the CLI under 20 % of the package, no argv built outside the CLI."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "probgen"
ROOT = PKG.parent

#: top-level module or sub-package of probgen -> layer; a file may import its own layer or below
LAYERS = {
    "_version": 0, "_warnings": 0,
    "data": 1, "nn": 1,
    "likelihoods": 2, "check": 2, "codes": 2, "story": 2, "adapt": 2,
    "infer": 3, "evaluate": 3, "parzen": 3, "io": 3, "runs": 3,  # one layer: trainers, the estimators, the checkpoint format
    "models": 4,
    "diagnostics": 5, "metrics": 5, "plots": 5,
    "recipes": 6,
    "report": 7, "cli": 7,
}
#: the one documented exception: Story's conveniences (fit/log_prob/save/load) delegate upwards at call time
ALLOWED_UP = {("story", "infer"), ("story", "evaluate"), ("story", "io")}


def _unit(path: Path) -> str:
    return path.relative_to(PKG).parts[0].removesuffix(".py")


def _imports(path: Path):
    """Every probgen module a file imports (top level and inside functions), as its first component."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    pkg_parts = ["probgen", *path.relative_to(PKG).parent.parts]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == "probgen" and len(parts) > 1:
                    yield node.lineno, parts[1]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg_parts[: len(pkg_parts) - node.level + 1]
                mod = base + (node.module.split(".") if node.module else [])
            else:
                mod = (node.module or "").split(".")
            if mod[0] != "probgen":
                continue
            if len(mod) > 1:
                yield node.lineno, mod[1]
            else:  # from probgen import x / from . import x (at the package root)
                for a in node.names:
                    yield node.lineno, a.name


def _sources():
    return sorted(p for p in PKG.rglob("*.py") if p.parent != PKG or p.name not in ("__init__.py", "__main__.py"))


def test_every_module_has_a_layer():
    missing = sorted({_unit(p) for p in _sources()} - set(LAYERS))
    assert not missing, f"modules with no layer in docs/architecture.md: {missing}"


def test_imports_go_downwards_only():
    bad = []
    for path in _sources():
        unit = _unit(path)
        if unit not in LAYERS:  # reported by test_every_module_has_a_layer
            continue
        for line, target in _imports(path):
            if target in LAYERS and LAYERS[target] > LAYERS[unit] and (unit, target) not in ALLOWED_UP:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {target} (layer {LAYERS[target]} > {LAYERS[unit]})")
    assert not bad, "\n".join(bad)


def test_report_never_drives_the_cli():
    for folder in (PKG / "report", ROOT / "experiments"):
        for path in folder.rglob("*.py"):
            names = {t for _, t in _imports(path)} if folder.name == "report" else set()
            text = path.read_text(encoding="utf-8")
            assert "cli" not in names and "probgen.cli" not in text, f"{path} uses the CLI"


def test_models_do_not_import_each_other():
    for path in (PKG / "models").glob("*.py"):
        if path.name == "__init__.py":
            continue
        text = path.read_text(encoding="utf-8")
        for other in (PKG / "models").glob("*.py"):
            if other != path and other.name != "__init__.py":
                assert f"from .{other.stem} import" not in text, f"{path.name} imports {other.name}"


@pytest.mark.parametrize("path", _sources() + [PKG / "__init__.py"], ids=lambda p: str(p.relative_to(PKG)))
def test_no_file_over_500_lines(path):
    n = len(path.read_text(encoding="utf-8").splitlines())
    assert n <= 500, f"{path.relative_to(ROOT)} has {n} lines"


def test_cli_is_under_a_fifth_of_the_package():
    count = lambda paths: sum(len(p.read_text(encoding="utf-8").splitlines()) for p in paths)  # noqa: E731
    total, cli = count(PKG.rglob("*.py")), count((PKG / "cli").rglob("*.py"))
    assert cli <= 0.2 * total, f"probgen/cli is {cli} of {total} lines ({100 * cli / total:.1f} %)"


def test_arviz_and_matplotlib_stay_in_their_modules():
    for path in PKG.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(PKG)
        if "import arviz" in text or "from arviz" in text:
            assert rel == Path("diagnostics/_arviz.py"), f"{rel} imports ArviZ"
        if "matplotlib" in text:
            assert rel.parts[0] == "plots", f"{rel} imports matplotlib"
