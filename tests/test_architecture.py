"""The shape we hold to (docs/architecture.md), checked: layers import downwards only, no import
circles, families are passive stories (``models/`` imports no trainer and no estimator; nothing
outside the stories probes a model's capabilities or names a family), no file over 500 lines, the
CLI under 20 % of the package, no argv built outside the CLI."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "probgen"
ROOT = PKG.parent

#: top-level module or sub-package of probgen -> layer; a file may import its own layer or below
LAYERS = {
    "_version": 0, "_warnings": 0, "runtime": 0,
    "data": 1, "nn": 1,
    "likelihoods": 2, "check": 2, "codes": 2, "traits": 2, "story": 2, "adapt": 2, "paramstore": 2, "parzen": 2,
    "infer": 3, "evaluate": 3, "importance": 3, "io": 3, "runs": 3,  # one layer: trainers, the estimator, the checkpoint format
    "models": 4,
    "diagnostics": 5, "metrics": 5, "plots": 5,
    "recipes": 6,
    "report": 7, "cli": 7,
}
#: the one documented exception: Story's conveniences (fit/log_prob/save/load) delegate upwards at call time
ALLOWED_UP = {("story", "infer"), ("story", "evaluate"), ("story", "io")}


#: where a family may be named and a story's capabilities asked for: the stories themselves, the story
#: protocol (its checker and the wrapper of a user's program) and the modules where families register
STORY_SIDE = ("models", "story.py", "check.py", "adapt.py")
REGISTRY_MODULES = ("recipes/models.py", "recipes/adversarial.py", "recipes/text.py")
#: attributes of a story that say what it can do: read ``model.traits`` instead of probing for them
CAPABILITIES = {
    "needs_labels", "has_exact_log_prob", "estimator", "label_prior", "label_log_prior", "encode", "decode",
    "transfer", "complete", "responsibilities", "sample", "fit_parzen", "latent", "n_classes", "x_dim", "z_dim",
    "x_shape", "likelihood", "checked", "fit_seconds", "train_result", "checkpoint_extra", "checkpoint_data",
    "kind", "pyro_name", "from_checkpoint", "takes_y", "static_graph", "max_plate_nesting", "generator_ema",
    "n_params", "prepare", "guide", "traits", "cluster", "log_prob", "fit",
}


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


def _module_graph() -> dict[str, set[str]]:
    """probgen module -> the probgen modules it imports (top level and inside functions)."""
    def name(p: Path) -> str:
        parts = list(p.relative_to(PKG).with_suffix("").parts)
        return ".".join(["probgen", *(parts[:-1] if parts[-1] == "__init__" else parts)])

    mods = {name(p): p for p in PKG.rglob("*.py")}
    graph = {}
    for mod, path in mods.items():
        pkg = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
        out = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = (".".join(pkg[: len(pkg) - node.level + 1] + (node.module.split(".") if node.module else []))
                        if node.level else node.module or "")
                out |= {f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names}
            elif isinstance(node, ast.Import):
                out |= {a.name for a in node.names}
        graph[mod] = {t for t in out if t in mods and t != mod}
    return graph


def test_no_import_circles():
    graph = _module_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(v: str) -> None:  # Tarjan: strongly connected components of the import graph
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert not circles, "import circles: " + "; ".join(" <-> ".join(c) for c in circles)


def test_models_import_neither_trainers_nor_the_estimator():
    bad = [f"{p.relative_to(ROOT)}:{line} imports {t}" for p in (PKG / "models").glob("*.py")
           for line, t in _imports(p) if t in ("infer", "evaluate")]
    assert not bad, "\n".join(bad)


def _outside_stories():
    for path in _sources() + [PKG / "__init__.py"]:
        rel = path.relative_to(PKG).as_posix()
        if not rel.startswith(STORY_SIDE):
            yield path, rel


def test_no_capability_lookups_outside_the_stories():
    """A story declares what it is (``traits``); nothing else asks ``getattr``/``hasattr``/``inspect``."""
    bad = []
    for path, rel in _outside_stories():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            fn = node.func
            if (isinstance(fn, ast.Name) and fn.id in ("getattr", "hasattr") and len(node.args) >= 2
                    and isinstance(node.args[1], ast.Constant) and node.args[1].value in CAPABILITIES):
                bad.append(f"{rel}:{node.lineno} {fn.id}(..., {node.args[1].value!r})")
            if (isinstance(fn, ast.Attribute) and fn.attr == "signature" and isinstance(fn.value, ast.Name)
                    and fn.value.id == "inspect" and node.args and isinstance(node.args[0], ast.Attribute)
                    and node.args[0].attr in CAPABILITIES):
                bad.append(f"{rel}:{node.lineno} inspect.signature(....{node.args[0].attr})")
    assert not bad, "capability lookups outside models/ and story.py:\n" + "\n".join(bad)


def _family_names() -> set[str]:
    from probgen.models import _import_all
    from probgen.recipes.models import MODELS, model_spec
    from probgen.story import REGISTRY

    _import_all()
    model_spec("vae")  # loads every module that registers a family
    return ({k for k, cls in REGISTRY.items() if cls.__module__.startswith("probgen.")} | set(MODELS)) - {"story"}


def test_no_family_names_outside_the_stories_and_the_registry():
    names = _family_names()
    bad = []
    for path, rel in _outside_stories():
        if rel in REGISTRY_MODULES:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        # a package's __init__ may name its own modules (recipes/vae.py is a module, not a family)
        siblings = {p.stem for p in path.parent.glob("*.py")} if path.name == "__init__.py" else set()
        docs = {id(n.body[0].value) for n in ast.walk(tree)
                if isinstance(n, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.body
                and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names \
                    and id(node) not in docs and node.value not in siblings:
                bad.append(f"{rel}:{node.lineno} {node.value!r}")
    assert not bad, "family names outside models/ and the registry:\n" + "\n".join(bad)


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
