"""The trainers' common contract (probgen.infer.train, issue 27): one config for SVI, one hook
system (the story's step_end/epoch_end, then the callbacks), one writer of the model file."""
from __future__ import annotations

import pyro
import pytest
import torch

from probgen.infer import Callback, SVIConfig, fit_svi, train
from probgen.infer.svi import _mean_loss
from probgen.infer.tensorboard import sample_images
from probgen.models import GAN, GMM, VAE


def _data(n=48, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, d, generator=g) > 0.5).float()


class Counting(VAE):
    """A VAE whose hooks count: steps taken, epochs seen (in eval mode), a number added to the record."""

    kind = "test_counting_vae"

    def __init__(self, x_dim: int = 6):
        super().__init__(x_dim, z_dim=2, hidden=(4,))
        self.steps, self.modes = 0, []

    def step_end(self) -> None:
        self.steps += 1

    def epoch_end(self, record: dict) -> None:
        self.modes.append(self.training)
        record["hooked"] = self.steps


def test_config_and_keywords_are_the_same_and_unknown_options_are_one_line():
    x = _data()
    pyro.set_rng_seed(0)
    a = fit_svi(VAE(6, z_dim=2, hidden=(4,)), x, epochs=2, batch_size=16, progress=False)
    pyro.set_rng_seed(0)
    b = fit_svi(VAE(6, z_dim=2, hidden=(4,)), x, config=SVIConfig(epochs=2, batch_size=16, progress=False))
    assert [r["train_loss"] for r in a.history] == [r["train_loss"] for r in b.history]
    with pytest.raises(ValueError, match=r"^unknown training option\(s\): on_epoch, wat$"):
        fit_svi(VAE(6), x, on_epoch=print, wat=1)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        SVIConfig(batch_size=0)
    assert SVIConfig.of(SVIConfig(epochs=3), {"lr": 0.1}) == SVIConfig(epochs=3, lr=0.1)


def test_story_hooks_run_before_the_callbacks_in_eval_mode():
    seen = []

    class Saw(Callback):
        def on_epoch_end(self, trainer, record):
            seen.append(record["hooked"])

    story = Counting()
    res = story.fit(_data(), epochs=3, batch_size=16, progress=False, callbacks=[Saw()]).train_result
    assert story.steps == 9 and seen == [3, 6, 9] and [r["hooked"] for r in res.history] == [3, 6, 9]
    assert story.modes == [False, False, False]


def test_em_calls_the_story_hooks():
    class CountingGMM(GMM):
        kind = "test_counting_gmm"

        def __init__(self, n_components: int = 2):
            super().__init__(n_components, likelihood="bernoulli")
            self.counts = [0, 0]

        def step_end(self) -> None:
            self.counts[0] += 1

        def epoch_end(self, record: dict) -> None:
            self.counts[1] += 1

    g = CountingGMM().fit(_data(), max_iter=5, tol=0, progress=False)
    assert g.counts == [len(g.em_history) - 1, len(g.em_history)]  # no M-step after the last E-step


def test_zero_epochs_with_a_checkpoint_still_writes_the_final_file(tmp_path):
    spec = {"name": "test", "seed": 1}
    vae = VAE(6, z_dim=2, hidden=(4,))
    train(vae, _data(), epochs=0, progress=False, checkpoint=tmp_path / "m.pt", data=spec, extra={"note": 1})
    back = VAE.load(tmp_path / "m.pt")
    assert back.checkpoint_data == spec and back.checkpoint_extra["note"] == 1
    assert back.checkpoint_extra["epoch"] == 0


def test_best_and_last_files_record_the_data_spec(tmp_path):
    spec = {"name": "test", "seed": 2}
    fit_svi(VAE(6, z_dim=2, hidden=(4,)), _data(), epochs=2, batch_size=16, progress=False,
            checkpoint=tmp_path / "m.pt", data=spec)
    assert VAE.load(tmp_path / "m.pt").checkpoint_data == spec
    assert VAE.load(tmp_path / "m.last.pt").checkpoint_data == spec
    gan = GAN("mlp", x_shape=[6], z_dim=2, hidden=[8])
    gan.fit(_data(), epochs=1, batch_size=16, progress=False, checkpoint=tmp_path / "g.pt", data=spec)
    assert GAN.load(tmp_path / "g.last.pt").checkpoint_data == spec


class _OtherRank:
    """A stand-in for rank 1 of a torchrun job (one process, nothing to all-reduce)."""

    is_main, world_size = False, 2

    def prepare(self, step, generator):
        pass

    mean_loss = staticmethod(_mean_loss)

    def agree(self, flag):
        return bool(flag)


def test_a_non_main_rank_writes_nothing(tmp_path):
    vae = VAE(6, z_dim=2, hidden=(4,))
    vae.fit(_data(), val=_data(8, seed=1), epochs=2, batch_size=16, progress=False, checkpoint=tmp_path / "m.pt",
            distributed=_OtherRank())
    assert len(vae.train_result.history) == 2 and not any(tmp_path.iterdir())


def test_sample_grid_reads_declared_abilities_and_the_samples_shape():
    image = VAE(16, z_dim=2, hidden=(4,), x_shape=[4, 4])
    assert tuple(sample_images(image, 3).shape) == (3, 1, 4, 4)
    assert sample_images(VAE(6, z_dim=2, hidden=(4,)), 3) is None  # flat samples: no picture
    assert tuple(sample_images(GAN("mlp", x_shape=[4, 4], z_dim=2, hidden=[8]), 2).shape) == (2, 1, 4, 4)
    assert sample_images(GAN("mlp", x_shape=[1], z_dim=2, hidden=[8], output="linear"), 2) is None


def test_an_option_of_another_trainer_is_one_line_naming_it():
    """EM takes no learning rate: the line names the option and the trainer the story also has; a trainer
    the story does not declare is refused before anything runs."""
    x = torch.bernoulli(torch.full((40, 4), 0.5))
    with pytest.raises(ValueError, match=r"for the em trainer: lr \(this story also trains with method='svi'\)"):
        GMM(2, likelihood="bernoulli").fit(x, lr=0.1, progress=False)
    with pytest.raises(ValueError, match="GAN is fitted by adversarial, not 'svi'"):
        GAN(x_shape=[4], hidden=[8]).fit(x, method="svi")
