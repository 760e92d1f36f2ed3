"""examples/: the three story styles, unchanged, through the command line and the Python API."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from probgen.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FAST = ["--epochs", "1", "--quiet", "--num-samples", "3", "--batch-size", "256", "--train-size", "512"]
STYLES = [("pyro_vae.py:VAE", "vae", ["latent"], ["obs"]),
          ("mixture_pyromodule.py:MixturePriorVAE", "mixturepriorvae", ["code"], ["pixels"]),
          ("plain_functions.py:model,guide", "plain_functions", ["factors"], ["image"])]


def test_examples_do_not_import_probgen():
    for f in EXAMPLES.glob("*.py"):
        assert "probgen" not in f.read_text().split('"""', 2)[-1], f


@pytest.mark.parametrize("spec, kind, latent, observed", STYLES)
def test_example_trains_on_the_command_line_and_loads(tmp_path, capsys, spec, kind, latent, observed):
    from probgen.recipes.story import load_story_checkpoint

    assert main(["train", "--story", str(EXAMPLES / spec), "--data", "digits", *FAST, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "test log-likelihood" in out and "IWAE, K=3" in out
    ckpt = tmp_path / f"{kind}.pt"
    story = load_story_checkpoint(ckpt, allow_code=True)
    assert story.kind == ckpt.stem
    x = torch.zeros(3, 8, 8)
    assert story.check(x).latent == latent and story.check(x).observed == observed
    assert torch.isfinite(story.log_prob(x, num_samples=4)).all()
    assert story.sample(2).shape == (2, 8, 8)
