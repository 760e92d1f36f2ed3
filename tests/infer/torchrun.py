"""Run a worker script as a 2-rank ``torchrun`` job on the CPU (gloo), for the DDP tests."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: the last lines of every worker: leave through probgen's teardown (no gloo abort at exit)
EPILOGUE = "\nfrom probgen.infer.distributed import finish\nfinish(0)\n"


def run_two_ranks(out: Path, worker: str, *args: str, timeout: int = 240) -> Path:
    """Write ``worker`` (plus :data:`EPILOGUE`) to ``out/worker.py`` and run it on 2 ranks with
    ``out`` and ``args`` as its arguments; its output goes to ``out/torchrun.log``."""
    script = out / "worker.py"
    script.write_text(worker + EPILOGUE)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                             "MASTER_PORT")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script),
           str(out), *args]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    (out / "torchrun.log").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out
