"""What every trainer shares (probgen.infer.callbacks): the progress bar, the log line, early
stopping, the checkpoint/resume path (bit-identical resume), the callback and logging hooks."""
from __future__ import annotations

import io
import math

import pyro
import pytest
import torch

from probgen.infer import Callback, Checkpointer, EarlyStopping, Logger, fit_svi, last_path, log, progress_bar
from probgen.models import GMM, VAE


def _data(n=48, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, d, generator=g) > 0.5).float()


# -- progress bar and log line ---------------------------------------------------------------
def test_quiet_progress_bar_iterates_and_accepts_every_call():
    bar = progress_bar(range(3), enabled=False, desc="x")
    assert list(bar) == [0, 1, 2]
    bar.set_postfix(loss="1.0")
    manual = progress_bar(enabled=False, desc="pixels", unit="px", total=10)
    manual.update(5)
    manual.close()
    assert list(manual) == []


def test_live_progress_bar_is_tqdm_and_hides_itself_off_a_terminal():
    from tqdm.auto import tqdm

    bar = progress_bar(range(2), desc="train vae", unit="epoch")
    assert isinstance(bar, tqdm) and list(bar) == [0, 1]
    assert bar.disable  # pytest's output is not a terminal: tqdm's disable=None turns the bar off
    manual = progress_bar(desc="sampling pixels", unit="px", total=8)
    manual.update(8)
    manual.set_postfix(n=1)
    manual.close()


def test_log_writes_one_line_to_the_given_file():
    out = io.StringIO()
    log("hello", file=out)
    assert out.getvalue() == "hello\n"


# -- early stopping ------------------------------------------------------------------------------
def test_early_stopping_counts_epochs_without_improvement():
    stop = EarlyStopping(patience=2)
    assert stop.update(0, 3.0) and not stop.should_stop
    assert not stop.update(1, 3.0) and not stop.should_stop  # equal is not better
    assert stop.update(2, 2.5) and stop.bad_epochs == 0
    assert not stop.update(3, 2.6) and not stop.update(4, 9.0) and stop.should_stop
    assert stop.state() == {"best_val": 2.5, "best_epoch": 2, "bad_epochs": 2}
    again = EarlyStopping(patience=2)
    again.load_state(stop.state())
    assert again.should_stop
    assert not EarlyStopping(None).update(0, math.nan) and not EarlyStopping(None).should_stop


def test_fit_svi_stops_early_with_patience():
    x = _data()
    res = fit_svi(VAE(6, z_dim=2, hidden=(4,)), x, val=x[:8], epochs=50, batch_size=16, lr=1.0,
                  patience=1, progress=False)
    assert res.stopped_early and len(res.history) < 50
    assert res.best_epoch == min(range(len(res.history)), key=lambda i: res.history[i]["val_loss"])


# -- the one checkpoint/resume path --------------------------------------------------------------
def test_last_path_sits_beside_the_checkpoint(tmp_path):
    assert last_path(tmp_path / "vae.pt") == tmp_path / "vae.last.pt"
    ck = Checkpointer(VAE(6), tmp_path / "run" / "m.pt")
    assert ck.last == tmp_path / "run" / "m.last.pt" and ck.resume() is None  # no file yet
    off = Checkpointer(VAE(6), tmp_path / "m.pt", enabled=False)
    off.save_best({"epoch": 1})
    off.save_last({"epoch": 0}, {})
    assert not any(tmp_path.iterdir())


def _fit(x, ckpt, epochs, resume=False):
    pyro.clear_param_store()
    vae = VAE(6, z_dim=2, hidden=(4,))
    vae.fit(x, val=x[:8], epochs=epochs, batch_size=16, lr=1e-2, patience=None, progress=False,
            checkpoint=ckpt, resume=resume, check=False)
    return vae, vae.train_result


def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path):
    x = _data()
    pyro.set_rng_seed(3)
    ref, ref_res = _fit(x, tmp_path / "ref" / "m.pt", 6)
    pyro.set_rng_seed(3)
    _fit(x, tmp_path / "cut" / "m.pt", 3)  # stops after 3 epochs, as if killed
    pyro.set_rng_seed(12345)  # another process state: the resume file must restore everything
    again, res = _fit(x, tmp_path / "cut" / "m.pt", 6, resume=True)
    assert [r["epoch"] for r in res.history] == list(range(1, 7))
    assert [r["train_loss"] for r in res.history] == [r["train_loss"] for r in ref_res.history]
    for k, v in ref.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k
    for name in ("m.pt", "m.last.pt"):
        a = torch.load(tmp_path / "ref" / name, weights_only=True)["state_dict"]
        b = torch.load(tmp_path / "cut" / name, weights_only=True)["state_dict"]
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_resume_from_another_kind_of_model_is_refused(tmp_path):
    x = torch.randn(30, 6)
    GMM(2).fit(x, progress=False).save(tmp_path / "m.last.pt")
    with pytest.raises(ValueError, match=r"m\.last\.pt: resume file holds a 'gmm' model, not 'vae'"):
        fit_svi(VAE(6), (x > 0).float(), epochs=1, checkpoint=tmp_path / "m.pt", resume=True, progress=False)
    VAE(6).save(tmp_path / "m.last.pt")  # a model file, no training state
    with pytest.raises(ValueError, match="cannot resume from it"):
        fit_svi(VAE(6), (x > 0).float(), epochs=1, checkpoint=tmp_path / "m.pt", resume=True, progress=False)


# -- callbacks and the logging hook ------------------------------------------------------------------
def test_logger_receives_every_epoch_record_and_a_callback_can_stop():
    x = _data()
    seen = []
    res = fit_svi(VAE(6, z_dim=2, hidden=(4,)), x, val=x[:8], epochs=3, batch_size=16, progress=False,
                  callbacks=[Logger(lambda algorithm, record: seen.append((algorithm, dict(record))))])
    assert [(a, r["epoch"]) for a, r in seen] == [("svi", 1), ("svi", 2), ("svi", 3)]
    assert {"train_loss", "val_loss", "seconds"} <= set(seen[0][1])

    class StopAtTwo(Callback):
        def on_epoch_end(self, trainer, record):
            trainer.stop = record["epoch"] == 2

    res = fit_svi(VAE(6, z_dim=2, hidden=(4,)), x, epochs=10, batch_size=16, progress=False,
                  patience=None, callbacks=[StopAtTwo()])
    assert len(res.history) == 2 and res.stopped_early


def test_default_logger_prints_one_line_per_epoch(capsys):
    fit_svi(VAE(6, z_dim=2, hidden=(4,)), _data(), epochs=2, batch_size=16, progress=False, callbacks=[Logger()])
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("svi: ")]
    assert len(lines) == 2 and "epoch 1" in lines[0] and "train_loss" in lines[0]


def test_resume_file_of_the_old_format_still_resumes_bit_identically(tmp_path):
    """A ``.last.pt`` written by the old main (format 1: optimizer and trainer state inside
    ``extra``) is upgraded on loading and resumes like a new one."""
    x = _data()
    pyro.set_rng_seed(3)
    ref, _ = _fit(x, tmp_path / "ref" / "m.pt", 5)
    pyro.set_rng_seed(3)
    _fit(x, tmp_path / "old" / "m.pt", 3)
    last = tmp_path / "old" / "m.last.pt"
    p = torch.load(last, weights_only=True)
    old = {"probgen": {"format": 1, "version": "0.1.0"}, "kind": p["kind"], "config": p["config"],
           "state_dict": p["state_dict"], "extra": {**p["trainer"], "optim": p["optimizer"]}}
    torch.save(old, last)
    pyro.set_rng_seed(777)
    again, res = _fit(x, tmp_path / "old" / "m.pt", 5, resume=True)
    assert [r["epoch"] for r in res.history] == [1, 2, 3, 4, 5]
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in ref.state_dict().items())


def test_set_threads_default_and_bad_value(monkeypatch):
    from probgen.infer.callbacks import set_threads

    before = torch.get_num_threads()
    try:
        monkeypatch.setattr("os.cpu_count", lambda: 2)
        assert set_threads() == 1 and torch.get_num_threads() == 1  # a 2-core machine: one thread
        monkeypatch.setattr("os.cpu_count", lambda: 32)
        assert set_threads() == 4
        assert set_threads(2) == 2
        with pytest.raises(ValueError, match="threads"):
            set_threads(0)
    finally:
        torch.set_num_threads(before)
