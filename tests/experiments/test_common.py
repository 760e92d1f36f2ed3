"""experiments/_common.py: rewinding a resumable run to its best-validation epoch; training time over every
invocation, labelled with where it was measured."""
import sys

import torch

from probgen.infer import fit_svi
from probgen.io import load_checkpoint
from probgen.models import VAE

from ._run import ROOT

sys.path.insert(0, str(ROOT / "experiments"))
from _common import (elapsed, measured_on, rewind_to_best, rewinds, rewound_seconds, train_seconds,  # noqa: E402
                     wall_hours)


def _overfit(path, epochs, lr=0.05, **kw):
    g = torch.Generator().manual_seed(0)
    x, val = (torch.rand(16, 20, generator=g) > 0.5).float(), (torch.rand(16, 20, generator=g) > 0.5).float()
    story = VAE(20, z_dim=2, hidden=(32,))
    return story, fit_svi(story, x, val=val, epochs=epochs, batch_size=8, lr=lr, checkpoint=path, progress=False,
                          patience=None, **kw)


def test_rewind_resumes_from_the_best_epoch_and_counts_the_discarded_time(tmp_path):
    path = tmp_path / "m.pt"
    assert rewind_to_best(path) is None  # no resume file: nothing to do
    _, result = _overfit(path, 25)
    best = result.best_epoch
    assert best + 1 < 25, "16 examples at lr 0.05 should overfit"
    before = load_checkpoint(tmp_path / "m.last.pt")["trainer"]
    info = rewind_to_best(path)
    assert info["best_epoch"] == best + 1 and info["discarded_epochs"] == 24 - best and info["discarded_seconds"] > 0
    assert (tmp_path / "m.last.pt.before-rewind").is_file() and rewinds(path) == [info]
    assert rewound_seconds(path) == info["discarded_seconds"]
    after = load_checkpoint(tmp_path / "m.last.pt")
    assert after["trainer"]["history"] == before["history"][: best + 1] and after["optimizer"]["state"] == {}
    for k, v in before["best_state_dict"].items():
        assert torch.equal(after["state_dict"][k], v)
    assert rewind_to_best(path) is None  # its last epoch is its best now

    _, resumed = _overfit(path, best + 3, resume=True, lr=1e-3)  # two epochs on from the best, at a lower lr
    assert [r["epoch"] for r in resumed.history] == list(range(1, best + 4))
    assert [r["lr"] for r in resumed.history[-2:]] == [1e-3, 1e-3]


def test_a_second_rewind_keeps_the_first_copy(tmp_path):
    path = tmp_path / "m.pt"
    _overfit(path, 25)
    assert rewind_to_best(path) is not None
    _overfit(path, 40, resume=True)  # overfits again from the best
    first = (tmp_path / "m.last.pt.before-rewind").read_bytes()
    assert rewind_to_best(path) is not None, "15 more epochs at lr 0.05 should overfit again"
    assert (tmp_path / "m.last.pt.before-rewind").read_bytes() == first
    assert (tmp_path / "m.last.pt.before-rewind.2").is_file() and len(rewinds(path)) == 2


def test_training_time_counts_every_invocation_and_says_where():
    hist = [{"seconds": 10.0}, {"seconds": 20.0}, {"seconds": 5.0}, {"seconds": 12.0}]  # resumed after epoch 2
    assert elapsed(hist) == [10.0, 20.0, 25.0, 32.0] and train_seconds(hist) == 32.0 and train_seconds([]) == 0.0
    assert measured_on({"device": "cpu", "torch_threads": 2}) == "cpu×2"
    assert measured_on({"device": "cuda:0", "torch_threads": 1}) == "cuda:0"  # no CPU threads on a GPU row
    assert wall_hours({"train_wall_hours": 0.5, "device": "cuda:0"}) == "0.50 (cuda:0)"
    assert wall_hours({"nll": None}) == "—"
