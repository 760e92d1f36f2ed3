"""Interrupted training loses at most one epoch (issue 10).

A real ``probgen train vae`` process is killed with SIGKILL (no cleanup handlers run)
at random moments, several times in a row, each time restarted with ``--resume``.
After every kill the checkpoints on disk must load, and the run must continue where
the file says it stopped. The final model must be bit-identical to a run that was
never interrupted: optimizer state, RNG states and the batch order are all in
``<model>.last.pt``.

Tiny settings (200 binary 8×8 images, an 8-unit VAE) keep it to ~30 s.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import probgen.models
from probgen.cli import main
from probgen.data import load as load_data
from probgen.models import VAE
from probgen.infer import Callback
from probgen.infer.svi import fit_svi

ROOT = Path(__file__).resolve().parents[2]
EPOCHS = 60
KILLS = 4


@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> Path:
    ds = load_data("digits", binarize=True, seed=0)
    path = tmp_path_factory.mktemp("kill_data") / "digits200.npz"
    np.savez(path, x=ds.train[:200].numpy().astype(np.uint8))  # 0/1 uint8: read back as binary
    return path


def _train_args(data: Path, out: Path) -> list[str]:
    return ["train", "--out", str(out), "vae", "--data", str(data), "--hidden", "8", "--z-dim", "2",
            "--epochs", str(EPOCHS), "--batch-size", "32", "--patience", "1000", "--seed", "3", "--quiet"]


def _stamp(path: Path):
    try:
        st = path.stat()
        return st.st_ino, st.st_mtime_ns
    except FileNotFoundError:
        return None


def _epoch_on_disk(last: Path) -> int:
    """Epochs completed according to the resume file (0 if there is none)."""
    if not last.exists():
        return 0
    model = probgen.models.load(last)  # must always load: the atomic write never leaves half a file
    return int(model.checkpoint_trainer["epoch"]) + 1


def test_sigkill_at_random_moments_then_resume(small_data, tmp_path):
    rng = random.Random()
    seed = rng.randrange(10**6)
    rng.seed(seed)
    out = tmp_path / "run"
    last, best = out / "vae.last.pt", out / "vae.pt"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="1")  # one thread, like the in-process reference (and fast on a busy CPU)
    cmd = [sys.executable, "-m", "probgen", *_train_args(small_data, out), "--resume"]
    trials, done = [], False
    for trial in range(KILLS):
        before = _epoch_on_disk(last)
        stamp = _stamp(last)
        # --resume only with a resume file: without one it is refused (nothing to continue)
        proc = subprocess.Popen(cmd if last.exists() else cmd[:-1], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        if trial == 0:
            delay, waited = rng.uniform(0.0, 0.5), 0.0  # during start-up, before any epoch
        else:  # wait until this process has written a checkpoint, then a random moment
            t0 = time.monotonic()
            while _stamp(last) == stamp and proc.poll() is None and time.monotonic() - t0 < 60:
                time.sleep(0.005)
            waited, delay = time.monotonic() - t0, rng.uniform(0.0, 0.25)
        time.sleep(delay)
        if proc.poll() is not None:  # finished before the kill
            done = proc.returncode == 0
            assert done, proc.stderr.read().decode()
            break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        if proc.returncode == 0:  # it finished in the instant between poll() and kill()
            done = True
            break
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
        after = _epoch_on_disk(last)  # loads, or the test fails here
        if best.exists():
            probgen.models.load(best)
        assert after >= before, f"resume went backwards ({before} -> {after}), seed {seed}"
        trials.append({"trial": trial, "kill_after_s": round(waited + delay, 3),
                       "epochs_on_disk": after,
                       "temp_files_left": len(list(out.glob(".*.tmp"))) if out.exists() else 0})
    # -- finish the run -------------------------------------------------------------------
    if not done:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
    final = probgen.models.load(last)
    history = final.checkpoint_trainer["history"]
    assert [h["epoch"] for h in history] == list(range(1, EPOCHS + 1)), f"seed {seed}"
    # -- the same run, never interrupted: bit for bit the same model --------------------------
    ref = tmp_path / "ref"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code = main(_train_args(small_data, ref))
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    for name in ("vae.pt", "vae.last.pt"):
        a = torch.load(out / name, weights_only=True)["state_dict"]
        b = torch.load(ref / name, weights_only=True)["state_dict"]
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), f"{name}:{k} differs after kill/resume (seed {seed})"
    print("\nKILL-RESUME " + json.dumps({"seed": seed, "epochs": EPOCHS, "trials": trials}))


def test_resume_file_written_every_epoch(tmp_path):
    """At every epoch boundary the resume file holds the previous epoch: at most one is lost."""
    x = (torch.rand(40, 6) > 0.5).float()
    ckpt = tmp_path / "m.pt"
    seen = []

    class OnDisk(Callback):
        def on_epoch_end(self, trainer, record):
            epoch = record["epoch"] - 1
            seen.append(_epoch_on_disk(tmp_path / "m.last.pt"))
            assert seen[-1] == epoch, f"before saving epoch {epoch + 1}, the file should hold {epoch} epochs"

    fit_svi(VAE(6, z_dim=2, hidden=(4,)), x, epochs=5, batch_size=16, checkpoint=ckpt,
            progress=False, patience=None, callbacks=[OnDisk()])
    assert seen == [0, 1, 2, 3, 4]
    assert _epoch_on_disk(tmp_path / "m.last.pt") == 5


def test_resume_with_a_new_lr_records_it(tmp_path):
    """A step decay by hand: the resumed epochs train with the new lr, and the history says which lr each had."""
    x = (torch.rand(40, 6) > 0.5).float()
    ckpt = tmp_path / "m.pt"
    fit_svi(VAE(6, z_dim=2, hidden=(4,)), x, epochs=2, batch_size=16, checkpoint=ckpt, progress=False,
            patience=None, lr=1e-3)
    story = VAE(6, z_dim=2, hidden=(4,))
    result = fit_svi(story, x, epochs=4, batch_size=16, checkpoint=ckpt, progress=False, patience=None,
                     lr=2.5e-4, resume=True)
    assert [r["lr"] for r in result.history] == [1e-3, 1e-3, 2.5e-4, 2.5e-4]
