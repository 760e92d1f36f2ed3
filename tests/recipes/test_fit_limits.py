"""``--train-size N`` and ``--minutes M`` on the trainers (recipes.models.fit_limits, infer.callbacks.TimeLimit)."""
from __future__ import annotations

import pytest


def _train(tmp_path, name, **given):
    from probgen.recipes.config import DataConfig, RunConfig, load_data, replace_given, seed_everything
    from probgen.recipes.models import model_spec
    from probgen.recipes.train import train_model

    seed_everything(0)
    params = replace_given(model_spec(name).config(), **given)
    return train_model(name, params, None, RunConfig(out=str(tmp_path), quiet=True), load_data(DataConfig()),
                       path=tmp_path / f"{name}.pt")


def test_train_size_uses_the_first_n_examples(tmp_path):
    res = _train(tmp_path, "vae", epochs=2, hidden="16", batch_size=50, train_size=100, patience=None)
    assert res.model.train_result.steps == 2 * 2  # 100 examples, batches of 50, two epochs
    assert any("first 100 of 1297" in n for n in res.notes)
    assert res.dataset.spec["splits"][0] == 1297  # the checkpoint still names the whole data set


def test_minutes_stops_after_the_first_epoch_past_the_limit(tmp_path):
    res = _train(tmp_path, "vae", epochs=50, hidden="16", batch_size=256, minutes=1e-6, patience=None)
    r = res.model.train_result
    assert len(r.history) == 1 and r.stopped_early
    res = _train(tmp_path, "gmm", method="svi", epochs=30, minutes=1e-6, train_size=200)
    assert len(res.model.train_result.history) == 1


@pytest.mark.parametrize("given, message", [({"train_size": 0}, "--train-size must be >= 1"),
                                            ({"minutes": 0.0}, "--minutes must be > 0")])
def test_bad_limits_are_one_line(tmp_path, given, message):
    with pytest.raises(ValueError, match=message):
        _train(tmp_path, "vae", epochs=1, hidden="16", **given)


def test_cli_takes_both_flags(tmp_path, capsys):
    from probgen.cli import main

    assert main(["train", "autoencoder", "--epochs", "3", "--hidden", "16", "--train-size", "64", "--minutes", "5",
                 "--quiet", "--out", str(tmp_path)]) == 0
    assert "first 64 of 1297" in capsys.readouterr().out


def test_gan_takes_both_limits_through_the_time_limit_callback(tmp_path):
    res = _train(tmp_path, "gan", epochs=50, hidden="8,16", z_dim=4, batch_size=32, train_size=64, minutes=1e-6,
                 no_monitor=True, grid_every=0)
    r = res.model.train_result
    assert len(r.history) == 1 and r.stopped_early and r.steps == 2  # 64 images, batches of 32, one epoch
    assert any("first 64 of 1297" in n for n in res.notes) and any("--minutes" in n for n in res.notes)
    with pytest.raises(ValueError, match="--train-size must be >= 1"):
        _train(tmp_path, "gan", epochs=1, train_size=0, no_monitor=True)
