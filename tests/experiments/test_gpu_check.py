"""experiments/gpu_check.sh: valid bash; its parts, their order, logs and wall times, checked with a stand-in
Python (the real run needs a CUDA machine: tests/test_cuda.py and the GPU benchmark)."""
import os
import subprocess

from ._run import ROOT

SCRIPT = ROOT / "experiments" / "gpu_check.sh"


def _fake_python(tmp_path, *, fail: str = ""):
    """A stand-in for python3 that records its arguments and fails when they contain ``fail``."""
    calls = tmp_path / "calls.txt"
    fake = tmp_path / "fakepy"
    fake.write_text(f'#!/usr/bin/env bash\necho "$*" >> {calls}\necho "ran $1 $2"\n'
                    + (f'case "$*" in *{fail}*) exit 1;; esac\n' if fail else "") + "exit 0\n")
    fake.chmod(0o755)
    return fake, calls


def _run(tmp_path, fake):
    env = {**os.environ, "PYTHON": str(fake)}
    return subprocess.run(["bash", str(SCRIPT), str(tmp_path / "out")], capture_output=True, text=True, env=env,
                          timeout=30)


def test_gpu_check_is_valid_bash():
    proc = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_gpu_check_runs_the_test_module_then_the_benchmark(tmp_path):
    fake, calls = _fake_python(tmp_path)
    proc = _run(tmp_path, fake)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ran = calls.read_text().splitlines()
    assert len(ran) == 3 and "torch.cuda.is_available()" in ran[0]
    assert "tests/test_cuda.py" in ran[1] and "experiments/bench_vae_speed.py --device cuda" in ran[2]
    for part in ("info", "test_cuda", "bench_vae_speed"):
        assert (tmp_path / "out" / f"{part}.log").is_file()
        assert any(line.startswith(part) and " s wall" in line for line in proc.stdout.splitlines()), part


def test_gpu_check_without_cuda_runs_nothing(tmp_path):
    fake, calls = _fake_python(tmp_path, fail="is_available")
    proc = _run(tmp_path, fake)
    assert proc.returncode == 2 and "no CUDA device" in proc.stderr
    assert len(calls.read_text().splitlines()) == 1


def test_gpu_check_reports_a_failed_part(tmp_path):
    fake, _ = _fake_python(tmp_path, fail="test_cuda")
    proc = _run(tmp_path, fake)
    assert proc.returncode == 1 and "FAILED" in proc.stdout
