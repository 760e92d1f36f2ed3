"""The output policy lives in the recipe layer (:func:`probgen.recipes.guard.claim`): every command that writes
named files writes under ``--out`` (default ``runs/<command>/``) and replaces nothing without ``force``, whether
called as ``probgen CMD`` or as ``probgen.recipes.CMD(config)``. Tiny fixture checkpoints; seconds."""
from __future__ import annotations

from pathlib import Path

import pytest

from probgen.recipes import guard
from probgen.recipes.gan import GanToyConfig, JudgeConfig, WalkConfig, walk
from probgen.recipes.pixel import CompleteConfig, complete
from probgen.recipes.problems import ProblemsConfig
from probgen.recipes.train import SampleConfig, sample
from probgen.recipes.vae import (InterpolateConfig, LatentMapConfig, StyleTransferConfig, TraverseConfig,
                                 WhyVAEConfig, interpolate, traverse)
from probgen.runs import run_folder
from tests.test_reliability_hostile import run_cli

FIX = Path(__file__).parents[1] / "fixtures" / "old_format"

#: config class -> (command, the main file it writes by default)
DEFAULTS = [(SampleConfig, "sample", "samples.png"), (TraverseConfig, "traverse", "traverse.png"),
            (LatentMapConfig, "latent-map", "latent_map.png"), (InterpolateConfig, "interpolate", "interpolate.png"),
            (StyleTransferConfig, "style-transfer", "style_transfer.png"), (WalkConfig, "walk", "walk.png"),
            (CompleteConfig, "complete", "complete.png")]


@pytest.mark.parametrize("cls,command,name", DEFAULTS, ids=[d[1] for d in DEFAULTS])
def test_every_picture_command_writes_under_runs_command_by_default(cls, command, name):
    assert guard.outputs_of(cls())[0] == Path("runs") / command / name


@pytest.mark.parametrize("cfg,folder", [(JudgeConfig(), "runs/gan-eval"), (WhyVAEConfig(), "runs/why-vae"),
                                        (GanToyConfig(), "runs/gan-toy"), (ProblemsConfig(), "runs/problems")])
def test_folder_commands_write_under_runs_command_by_default(cfg, folder):
    assert all(p.parent == Path(folder) for p in guard.outputs_of(cfg))


def test_out_is_a_png_file_or_a_folder(tmp_path):
    assert guard.outputs_of(TraverseConfig(out=str(tmp_path / "t.png")))[0] == tmp_path / "t.png"
    assert guard.outputs_of(TraverseConfig(out=str(tmp_path / "figs")))[0] == tmp_path / "figs" / "traverse.png"
    (tmp_path / "v1.2").mkdir()  # an existing folder with a dot in its name is still a folder
    assert guard.outputs_of(TraverseConfig(out=str(tmp_path / "v1.2")))[0] == tmp_path / "v1.2" / "traverse.png"
    latent = guard.outputs_of(LatentMapConfig(out=str(tmp_path / "m")))
    assert latent == [tmp_path / "m" / "latent_map.png", tmp_path / "m" / "latent_map_scatter.png"]
    with pytest.raises(ValueError, match=r"--out .*x\.jpg: must be a \.png file or a folder"):
        guard.claim(TraverseConfig(out=str(tmp_path / "x.jpg")))


def test_the_python_api_defaults_to_runs_command_and_refuses_to_overwrite(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = sample(SampleConfig(checkpoint=str(FIX / "vae.pt"), n=4))
    assert res.path == Path("runs/sample/samples.png") and res.path.is_file()
    before = res.path.read_bytes()
    with pytest.raises(ValueError, match="samples.png: exists; pass --force"):
        sample(SampleConfig(checkpoint=str(FIX / "vae.pt"), n=4, seed=1))
    assert res.path.read_bytes() == before  # refused before anything was drawn or written
    sample(SampleConfig(checkpoint=str(FIX / "vae.pt"), n=4, seed=1, force=True))
    assert res.path.read_bytes() != before


@pytest.mark.parametrize("recipe,cfg", [
    (traverse, lambda d: TraverseConfig(checkpoint=str(FIX / "vae.pt"), out=str(d), steps=3)),
    (interpolate, lambda d: InterpolateConfig(checkpoint=str(FIX / "vae.pt"), out=str(d), steps=3)),
    (walk, lambda d: WalkConfig(checkpoint=str(FIX / "gan.pt"), out=str(d), n=2, steps=3)),
    (complete, lambda d: CompleteConfig(checkpoint=str(FIX / "pixel.pt"), out=str(d), n=1, quiet=True)),
], ids=["traverse", "interpolate", "walk", "complete"])
def test_recipes_from_python_never_replace_a_file_without_force(recipe, cfg, tmp_path):
    main = guard.outputs_of(cfg(tmp_path))[0]
    main.write_bytes(b"mine")
    with pytest.raises(ValueError, match="exists; pass --force"):
        recipe(cfg(tmp_path))
    assert main.read_bytes() == b"mine"
    from dataclasses import replace

    recipe(replace(cfg(tmp_path), force=True))
    assert main.read_bytes() != b"mine"


def test_the_cli_writes_under_runs_command_and_refuses_the_second_time(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["traverse", FIX / "vae.pt", "--steps", "3"]
    code, _, out = run_cli(argv)
    assert code == 0 and (tmp_path / "runs" / "traverse" / "traverse.png").is_file()
    assert "runs/traverse/traverse.png" in out
    code, lines, _ = run_cli(argv)
    assert code == 2 and len(lines) == 1 and "exists; pass --force" in lines[0]
    assert run_cli(argv + ["--force"])[0] == 0


def test_inside_a_held_run_folder_the_folders_policy_has_decided(tmp_path):
    (tmp_path / "traverse.png").write_bytes(b"old report figure")
    cfg = TraverseConfig(checkpoint=str(FIX / "vae.pt"), out=str(tmp_path / "traverse.png"), steps=3)
    with run_folder(tmp_path, name="tour", resume=True):
        traverse(cfg)  # the tour rewrites its own figures
    assert (tmp_path / "traverse.png").read_bytes() != b"old report figure"
    with pytest.raises(ValueError, match="exists"):  # outside the held folder: the file policy again
        traverse(cfg)
