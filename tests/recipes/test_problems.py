"""``probgen problems`` as a plain function: blur (sharpness of means, draws, another family, real
images) and imitation (nearest training images) of a tiny VAE on the built-in digits."""
from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    from probgen.recipes.config import DataConfig, RunConfig, load_data, replace_given, seed_everything
    from probgen.recipes.models import model_spec
    from probgen.recipes.train import train_model

    out = tmp_path_factory.mktemp("problems")
    ds, run = load_data(DataConfig()), RunConfig(out=str(out), quiet=True)
    seed_everything(0)
    vae = replace_given(model_spec("vae").config(), epochs=3, hidden="32", z_dim=4, batch_size=128)
    pix = replace_given(model_spec("pixelcnn").config(), epochs=1, channels=8, n_layers=1, batch_size=256)
    return {name: train_model(name, params, None, run, ds, path=out / f"{name}.pt").path
            for name, params in (("vae", vae), ("pixelcnn", pix))}


def test_blur_and_imitation_numbers_and_figures(ckpts, tmp_path):
    from probgen.recipes.config import RunConfig
    from probgen.recipes.problems import ProblemsConfig, problems

    res = problems(ProblemsConfig(checkpoint=str(ckpts["vae"]), compare=[str(ckpts["pixelcnn"])], n=16, n_eval=60,
                                  pairs=4, run=RunConfig(out=str(tmp_path), quiet=True)))
    sharp, grey = res.numbers["sharpness"], res.numbers["grey_share"]
    assert list(sharp) == ["VAE decoder means", "VAE draws", "pixelcnn draws", "real test images"]
    # on black-and-white digits: the means are grey and smoother than real digits; every draw is 0/1
    assert sharp["VAE decoder means"] < sharp["real test images"] and grey["VAE decoder means"] > 0.2
    assert grey["VAE draws"] == grey["pixelcnn draws"] == grey["real test images"] == 0.0
    n = res.numbers["nearest_train_distance"]
    assert n["n"] == 60 and n["generated_median"] > 0 and n["held_out_median"] > 0
    assert 0 <= n["generated_closer_than_that"] <= 1
    assert all(p.is_file() for p in res.paths) and [p.name for p in res.paths] == [
        "blur.png", "nearest.png", "distances.png", "problems.json"]
    assert json.loads((tmp_path / "problems.json").read_text())["sharpness"] == pytest.approx(sharp)
    assert any("near-copies" in line for line in res.lines)


def test_bad_input_is_one_line(ckpts, tmp_path):
    from probgen.recipes.config import RunConfig
    from probgen.recipes.problems import ProblemsConfig, problems

    run = RunConfig(out=str(tmp_path), quiet=True)
    with pytest.raises(ValueError, match="-n must be >= 1"):
        problems(ProblemsConfig(checkpoint=str(ckpts["vae"]), n=0, run=run))
    with pytest.raises(ValueError, match="no decoder means"):
        problems(ProblemsConfig(checkpoint=str(ckpts["pixelcnn"]), run=run))
    with pytest.raises(FileNotFoundError):
        problems(ProblemsConfig(checkpoint=str(tmp_path / "none.pt"), run=run))


def test_cli_problems_exit_codes(ckpts, tmp_path, capsys):
    from probgen.cli import main

    assert main(["problems", str(ckpts["vae"]), "-n", "9", "--n-eval", "30", "--out", str(tmp_path)]) == 0
    assert "sharpness" in capsys.readouterr().out and (tmp_path / "blur.png").is_file()
    assert main(["problems", str(ckpts["vae"]), "--pairs", "0", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--pairs must be >= 1" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
