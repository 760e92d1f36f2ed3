"""examples/: the three story styles, unchanged, through the command line and the Python API."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from probgen.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FAST = ["--epochs", "1", "--quiet", "--num-samples", "3", "--batch-size", "256", "--train-size", "512"]
# (spec, its run files' stem: named after the story, never after a built-in, latent sites, observed sites)
STYLES = [("pyro_vae.py:VAE", "pyro_vae.VAE", ["latent"], ["obs"]),
          ("mixture_pyromodule.py:MixturePriorVAE", "mixture_pyromodule.MixturePriorVAE", ["code"], ["pixels"]),
          ("plain_functions.py:model,guide", "plain_functions.model-guide", ["factors"], ["image"])]


def test_examples_do_not_import_probgen():
    for f in EXAMPLES.glob("*.py"):
        assert "probgen" not in f.read_text().split('"""', 2)[-1], f


@pytest.mark.parametrize("spec, stem, latent, observed", STYLES)
def test_example_trains_on_the_command_line_and_loads(tmp_path, capsys, spec, stem, latent, observed):
    from probgen.recipes.story import load_story_checkpoint

    assert main(["train", "--story", str(EXAMPLES / spec), "--data", "digits", *FAST, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "test log-likelihood" in out and "IWAE, K=3" in out
    ckpt = tmp_path / f"{stem}.pt"
    story = load_story_checkpoint(ckpt, allow_code=True)
    x = torch.zeros(3, 8, 8)
    assert story.check(x).latent == latent and story.check(x).observed == observed
    assert torch.isfinite(story.log_prob(x, num_samples=4)).all()
    assert story.sample(2).shape == (2, 8, 8)
