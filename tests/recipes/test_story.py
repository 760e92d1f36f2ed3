"""probgen.recipes.story: a user story's name, its run folder and its arguments."""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest

from probgen.cli import main
from probgen.recipes.story import parse_story_args, story_label, story_stem, svi_mixture_hint

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FAST = ["--epochs", "1", "--quiet", "--batch-size", "256", "--train-size", "256"]


def test_story_args_take_json_values():
    assert parse_story_args(["a=null", "b=true", "c=false", "d=None", "e=[1, 2]", "f=text", "g=1e-3"]) == \
        {"a": None, "b": True, "c": False, "d": None, "e": [1, 2], "f": "text", "g": 1e-3}


@pytest.mark.parametrize("spec, label, stem", [
    ("examples/pyro_vae.py:VAE", "pyro_vae.py:VAE", "pyro_vae.VAE"),
    ("/a/b/gmm_tutorial.py", "gmm_tutorial.py", "gmm_tutorial"),
    ("f.py:model,guide", "f.py:model,guide", "f.model-guide"),
    ("vae.py", "vae.py", "vae-story"),  # a file of functions called vae.py: never the built-in's files
])
def test_a_story_is_named_after_itself_never_a_built_in(spec, label, stem):
    assert story_label(spec) == label and story_stem(label) == stem


def test_a_given_name_that_is_a_built_in_is_refused():
    assert story_label("x.py:VAE", "myvae") == "myvae"
    for name in ("vae", "gmm", "compare"):
        with pytest.raises(ValueError, match=f"--name {name}: is the name of probgen's own"):
            story_label("x.py:VAE", name)
    with pytest.raises(ValueError, match="no folder"):
        story_label("x.py:VAE", "../x")


def test_train_story_holds_its_run_folder(tmp_path, capsys):
    spec = str(EXAMPLES / "plain_functions.py") + ":model,guide"
    args = ["train", "--story", spec, "--data", "digits", *FAST, "--num-samples", "2", "--out", str(tmp_path)]
    assert main(args) == 0
    manifest = json.loads((tmp_path / "plain_functions.model-guide.manifest.json").read_text())
    assert "plain_functions.model-guide.pt" in manifest["files"]
    capsys.readouterr()
    assert main(args) == 2  # a finished run: neither replaced nor mixed without --resume/--force
    assert "holds a finished plain_functions.model-guide run" in capsys.readouterr().err
    (tmp_path / ".plain_functions.model-guide.lock").write_text(f"{os.getpid()} {socket.gethostname()}\n")
    assert main([*args, "--force"]) == 2  # another live run writes there
    assert "another probgen run" in capsys.readouterr().err
    (tmp_path / ".plain_functions.model-guide.lock").unlink()
    assert main([*args, "--force", "--name", "mine"]) == 0 and (tmp_path / "mine.pt").is_file()


def test_a_story_called_vae_never_takes_the_built_in_vae_row_or_file(tmp_path):
    spec = str(EXAMPLES / "pyro_vae.py") + ":VAE"
    assert main(["compare", "--models", "vae", "--story", spec, "--epochs", "1", "--quiet", "--num-samples", "3",
                 "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "results.json").read_text())
    assert [r["name"] for r in result["models"]] == ["vae", "pyro_vae.py:VAE"]
    assert result["models"][1]["checkpoint"].endswith("pyro_vae.VAE.pt")
    assert sorted(result["elpd"]["models"]) == ["pyro_vae.py:VAE", "vae"]
    import probgen

    assert probgen.load(tmp_path / "vae.pt").kind == "vae"  # the built-in's file is the built-in's
    assert (tmp_path / "samples_pyro_vae.VAE.png").is_file() and (tmp_path / "samples_vae.png").is_file()


def test_the_mixture_hint_only_when_the_loss_still_falls(monkeypatch):
    from probgen import importance
    from probgen.check import StoryCheck

    plan = importance.ScoringPlan(enumerated=("c",))
    monkeypatch.setattr(importance, "last_plan", lambda model: plan)
    falling = [{"train_loss": 5.0, "val_loss": 5.0}, {"train_loss": 4.0, "val_loss": 4.5}]
    model = SimpleNamespace(checked=StoryCheck(elbo="enum"), train_result=SimpleNamespace(history=falling))
    hint = svi_mixture_hint(model, 1e-3, 2)
    assert "fell 0.5 nats/image in the last of 2 epochs" in hint and "raise --lr" in hint
    assert "raise --lr" not in svi_mixture_hint(model, 0.05, 2)
    model.train_result.history = [{"val_loss": 4.0}, {"val_loss": 3.999}]
    assert svi_mixture_hint(model, 1e-3, 2) is None
    plan = importance.ScoringPlan(enumerated=("c",), local_guided=("z",))  # a guide per example: not a mixture
    model.train_result.history = falling
    assert svi_mixture_hint(model, 1e-3, 2) is None
