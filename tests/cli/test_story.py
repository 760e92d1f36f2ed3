"""``probgen train --story FILE.py:Class``, ``probgen train mixture-vae``, explicit story loading."""
from __future__ import annotations

import textwrap

import pytest
import torch

from probgen.cli import main
from probgen.recipes.models import checkpoint_extra

STORY = textwrap.dedent('''
    import pathlib

    import pyro
    import pyro.distributions as dist
    import torch

    from probgen import Story
    from probgen.nn import BernoulliDecoder, GaussianEncoder

    pathlib.Path(__file__).with_name("imported.marker").touch()  # proof that this file ran


    class TinyStory(Story):
        def __init__(self, x_dim: int, *, z_dim: int = 2, hidden: int = 16):
            super().__init__()
            self.z_dim = z_dim
            self.encoder = GaussianEncoder(x_dim, z_dim, (hidden,))
            self.decoder = BernoulliDecoder(z_dim, x_dim, (hidden,))

        def model(self, x, y=None):
            self.register_params()
            x = x.reshape(len(x), -1)
            with pyro.plate("data", len(x)):
                z = pyro.sample("z", dist.Normal(x.new_zeros(len(x), self.z_dim), 1.0).to_event(1))
                pyro.sample("x", dist.Bernoulli(logits=self.decoder(z)).to_event(1), obs=x)

        def guide(self, x, y=None):
            self.register_params()
            x = x.reshape(len(x), -1)
            with pyro.plate("data", len(x)):
                pyro.sample("z", dist.Normal(*self.encoder(x)).to_event(1))
''')
FAST = ["--epochs", "1", "--quiet", "--num-samples", "3", "--batch-size", "512"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("story")
    (d / "tiny.py").write_text(STORY)
    out = d / "out"
    assert main(["train", "--story", f"{d / 'tiny.py'}:TinyStory", "--data", "digits", *FAST,
                 "--out", str(out), "--story-args", "z_dim=3"]) == 0
    (d / "imported.marker").unlink()
    return d, out / "tiny.TinyStory.pt"  # named after the story (file.py:Class), never a built-in


def test_checkpoint_records_the_story_and_its_arguments(trained, capsys):
    from probgen.io import load_checkpoint

    d, ckpt = trained
    payload = load_checkpoint(ckpt)
    assert payload["config"] == {"x_dim": 64, "z_dim": 3, "hidden": 16}  # x_dim filled from the data
    source = payload["extra"]["story_source"]
    assert source["spec"].endswith("tiny.py:TinyStory") and source["class"] == "TinyStory"


def test_loading_is_explicit_and_never_runs_code_by_itself(trained, monkeypatch):
    import probgen
    from probgen.recipes.story import load_story_checkpoint
    from probgen.story import REGISTRY

    d, ckpt = trained
    monkeypatch.delitem(REGISTRY, "tinystory")  # as in a fresh process
    with pytest.raises(ValueError, match="TinyStory"):
        probgen.load(ckpt)
    with pytest.raises(ValueError, match="allow_code=True"):
        load_story_checkpoint(ckpt)
    assert not (d / "imported.marker").exists()
    story = load_story_checkpoint(ckpt, allow_code=True)
    assert type(story).__name__ == "TinyStory" and story.z_dim == 3
    assert torch.isfinite(story.log_prob(torch.zeros(2, 8, 8), num_samples=4)).all()


def test_registered_kind_from_another_file_is_not_trusted(trained, monkeypatch):
    from probgen.recipes.story import load_story_class
    from probgen.story import Story

    d, ckpt = trained
    cls = load_story_class(f"{d / 'tiny.py'}:TinyStory")
    monkeypatch.setattr(cls, "_probgen_source", {"path": "/elsewhere/tiny.py"})
    from probgen.io import load_checkpoint

    with pytest.raises(ValueError, match="never done implicitly"):
        Story.from_checkpoint(load_checkpoint(ckpt))


@pytest.mark.parametrize("argv, message", [
    (["--story", "tiny.py:"], "expected path/to/file.py:ClassName"),
    (["--story", "tiny.py"], "has no model(x) function"),
    (["--story", "tiny.py:a,b,c"], "expected path/to/file.py:ClassName"),
    (["--story", "missing.py:TinyStory"], "story file not found"),
    (["--story", "tiny.py:Nope"], "has no story 'Nope' with model and guide (stories there: TinyStory)"),
    (["--story", "tiny.py:TinyStory", "--story-args", "{bad"], "--story-args: not a JSON object"),
    (["--story", "tiny.py:TinyStory", "--story-args", "width=3"], "takes no argument 'width'"),
    (["--story", "tiny.py:TinyStory", "--story-args", "oops"], "expected KEY=VALUE"),
    (["--story", "tiny.py:TinyStory", "vae"], "leave out the model name 'vae'"),
])
def test_user_errors_are_one_line(trained, monkeypatch, capsys, argv, message):
    d, _ = trained
    monkeypatch.chdir(d)
    assert main(["train", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_mixture_vae_trainer_and_sampling(tmp_path, capsys):
    import probgen

    assert main(["train", "--out", str(tmp_path), "mixture-vae", "--n-clusters", "3", "--z-dim", "2",
                 "--hidden", "16", "--epochs", "1", "--warmup-epochs", "1", "--quiet", "--batch-size", "512"]) == 0
    assert "clusters: test accuracy" in capsys.readouterr().out
    model = probgen.load(tmp_path / "mixture-vae.pt")
    assert model.kind == "mixture_vae"
    assert 0 < checkpoint_extra(tmp_path / "mixture-vae.pt")["test_cluster_accuracy"] <= 1
    png = tmp_path / "c1.png"
    assert main(["sample", str(tmp_path / "mixture-vae.pt"), "-n", "4", "--label", "1", "--mean",
                 "--out", str(png)]) == 0
    assert png.stat().st_size > 0


def test_a_pyro_users_vae_file_unchanged(tmp_path, capsys):
    """Done-when of issue 16: train --story, probgen.log_likelihood, diagnose k̂, a compare row."""
    import json
    from pathlib import Path

    import probgen

    vae = Path(__file__).resolve().parents[2] / "examples" / "pyro_vae.py"
    spec = f"{vae}:VAE"
    assert main(["train", "--story", spec, "--story-args", '{"z_dim": 3}', "--data", "digits", *FAST,
                 "--out", str(tmp_path / "t")]) == 0
    ckpt = tmp_path / "t" / "pyro_vae.VAE.pt"  # not the built-in vae.pt
    with pytest.raises(ValueError, match=r"probgen.load\(path, story=VAE\)"):
        probgen.load(ckpt)
    from probgen.recipes.story import load_story_program

    story = probgen.load(ckpt, story=load_story_program(spec)[0])
    assert story.program.z_dim == 3
    ll = probgen.log_likelihood(story, torch.zeros(4, 8, 8), num_samples=8)
    assert ll.shape == (4,) and torch.isfinite(ll).all()
    capsys.readouterr()
    assert main(["diagnose", str(ckpt), "--story", spec, "--points", "8", "--num-samples", "20", "--draws", "5",
                 "--nuts", "--out", str(tmp_path / "d"), "--quiet"]) == 0
    summary = json.loads((tmp_path / "d" / "summary.json").read_text())
    assert "khat" in json.dumps(summary)
    assert main(["compare", "--models", "gmm", "--story", spec, "--epochs", "1", "--num-samples", "4",
                 "--no-diagnostics", "--out", str(tmp_path / "c"), "--quiet"]) == 0
    rows = json.loads((tmp_path / "c" / "results.json").read_text())["models"]
    assert [r["name"] for r in rows] == ["gmm", "pyro_vae.py:VAE"] and rows[1]["estimator"] == "IWAE"
