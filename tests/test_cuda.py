"""Every command and the Python API on CUDA (issue 32). Skipped, as a whole, where torch sees no GPU.

Run on a CUDA machine (``experiments/gpu_check.sh`` runs this module and the GPU benchmark in one go):
the CLI in process (``probgen.cli.main``, as a user's command), the tour, the Python API, checkpoints
loaded onto the GPU, resume, ``torchrun`` with NCCL, and the captured SVI step. Tiny models and one
epoch each: the module is meant to take well under 90 s on one GPU.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pyro
import pyro.distributions as dist
import pytest
import torch

if not torch.cuda.is_available():
    pytest.skip("no CUDA device: the GPU checks run where torch.cuda.is_available()", allow_module_level=True)

from probgen.cli import main  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: one epoch of each family `train` knows, on the built-in digits (tiny options where a family has them)
FAMILIES = {
    "vae": ["--hidden", "32", "--z-dim", "4"],
    "cvae": ["--hidden", "32", "--z-dim", "4"],
    "pixelcnn": [],
    "gmm": ["--n-components", "5"],
    "gan": ["--arch", "mlp", "--hidden", "32,64", "--no-monitor", "--grid-every", "0"],
}


def _cuda(where) -> bool:
    """On the GPU: a ``torch.device``, or a device as a line or a result file names it (``device: cuda (NVIDIA
    H200)``, ``cuda:0 (...)``)."""
    return str(where).removeprefix("device: ").startswith("cuda")


def _run(argv: list, capsys) -> tuple[str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, err[-2000:]
    return out, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Each family trained for one epoch with ``--device cuda``: ``{name: checkpoint}`` and the first
    line each run printed on stderr."""
    out = tmp_path_factory.mktemp("cuda_train")
    ckpts, first = {}, {}
    for name, flags in FAMILIES.items():
        pyro.clear_param_store()
        proc_err = _train(out, name, flags)
        ckpts[name], first[name] = out / f"{name}.pt", proc_err.splitlines()[0]
    return out, ckpts, first


def _train(out: Path, name: str, flags: list, *extra: str) -> str:
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["train", name, "--data", "digits", "--epochs", "1", "--device", "cuda", "--quiet",
                     "--out", str(out), *flags, *extra])
    assert code == 0, err.getvalue()[-2000:]
    return err.getvalue()


def test_train_every_family_on_cuda(trained):
    from probgen.io import load_checkpoint

    _, ckpts, first = trained
    for name, path in ckpts.items():
        assert path.is_file(), name
        assert _cuda(first[name]), (name, first[name])  # the run's first line
        assert _cuda(load_checkpoint(path)["extra"]["device"]), name  # and its record


def test_sample_on_cuda(trained, tmp_path, capsys):
    _, ckpts, _ = trained
    for name, path in ckpts.items():
        png = tmp_path / f"{name}.png"
        _run(["sample", path, "-n", "16", "--device", "cuda", "--out", png], capsys)
        assert png.is_file(), name


def test_compare_scores_on_cuda(trained, tmp_path, capsys):
    out_dir, _, _ = trained
    out, _ = _run(["compare", "--from", out_dir, "--models", "gmm,vae,cvae,pixelcnn,gan", "--num-samples", "20",
                   "--device", "cuda", "--out", tmp_path / "c", "--quiet"], capsys)
    res = json.loads((tmp_path / "c" / "results.json").read_text())
    assert _cuda(res["device"])
    assert all(torch.isfinite(torch.tensor(r["test_log_likelihood"])) for r in res["models"])


def test_diagnose_on_cuda(trained, tmp_path, capsys):
    _, ckpts, _ = trained
    _run(["diagnose", ckpts["vae"], "--points", "8", "--num-samples", "20", "--draws", "10", "--nuts", "0",
          "--chains", "1", "--nuts-samples", "5", "--nuts-warmup", "5", "--device", "cuda",
          "--out", tmp_path / "d", "--quiet"], capsys)
    summary = json.loads((tmp_path / "d" / "summary.json").read_text())
    assert _cuda(summary["device"]) and summary["nuts"]


def test_resume_on_cuda(tmp_path):
    flags = FAMILIES["vae"]
    _train(tmp_path, "vae", flags)
    pyro.clear_param_store()
    _train(tmp_path, "vae", flags, "--epochs", "2", "--resume")
    from probgen.models import load

    model = load(tmp_path / "vae.pt", device="cuda")
    assert _cuda(model.device) and len(model.checkpoint_extra["history"]) == 2


def test_tour_quick_on_cuda(tmp_path, capsys):
    out, err = _run(["tour", "--quick", "--device", "cuda", "--out", tmp_path / "tour", "--quiet"], capsys)
    assert _cuda(err.splitlines()[0])
    report = json.loads((tmp_path / "tour" / "report.json").read_text())
    assert _cuda(report["device"])
    failed = {k: s["errors"] for k, s in report["sections"].items() if not s["ok"]}
    assert not failed, failed


# -- the Python API ---------------------------------------------------------------------------
class Tiny(torch.nn.Module):
    """A plain Pyro program (nothing of probgen): 2-d code, Bernoulli pixels."""

    def __init__(self, x_dim: int = 64):
        super().__init__()
        self.enc, self.dec = torch.nn.Linear(x_dim, 4), torch.nn.Linear(2, x_dim)

    def model(self, x):  # x: [n, 8, 8] images
        pyro.module("tiny", self)
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(x.new_zeros(len(x), 2), 1.0).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=self.dec(z)).to_event(1), obs=x.reshape(len(x), -1))

    def guide(self, x):
        pyro.module("tiny", self)
        with pyro.plate("data", len(x)):
            h = self.enc(x.reshape(len(x), -1))
            pyro.sample("z", dist.Normal(h[:, :2], h[:, 2:].exp()).to_event(1))


def test_api_fit_log_prob_sample_on_cuda(digits):
    import probgen
    from probgen.models import VAE

    vae = VAE(64, z_dim=4, hidden=[32]).to("cuda")
    vae.fit(digits.train, val=digits.val, epochs=1, progress=False)  # CPU data: moved to the story's device
    assert _cuda(vae.device)
    lp = vae.log_prob(digits.test[:16], num_samples=10)
    assert torch.isfinite(lp).all()
    assert _cuda(vae.sample(8).device)
    story = probgen.fit(Tiny().to("cuda"), digits, epochs=1, progress=False)  # a user's program
    assert _cuda(story.device)
    assert torch.isfinite(probgen.log_likelihood(story, digits.test[:16], num_samples=10)).all()


def test_load_onto_cuda_round_trip(tmp_path, digits):
    from probgen import Story
    from probgen.models import VAE

    vae = VAE(64, z_dim=4, hidden=[32])
    vae.fit(digits.train[:256], epochs=1, progress=False)
    vae.save(tmp_path / "v.pt")
    for device in ("cuda", "auto"):  # "auto" is CUDA here
        back = Story.load(tmp_path / "v.pt", device=device)
        assert _cuda(back.device)
        for (name, a), b in zip(vae.state_dict().items(), back.state_dict().values()):
            assert torch.equal(a, b.cpu()), name
        z = torch.randn(8, 4)
        torch.testing.assert_close(back.decode(z.to("cuda")).cpu(), vae.eval().decode(z), rtol=1e-4, atol=1e-5)
        assert torch.isfinite(back.log_prob(digits.test[:8], num_samples=5)).all()


def test_svi_step_on_cuda_is_captured(digits):
    """The VAE's SVI fit on CUDA takes the captured step where there is one, and trains."""
    from probgen.infer.compiled import BACKENDS
    from probgen.models import VAE

    vae = VAE(64, z_dim=4, hidden=[32]).to("cuda")
    backend = "cudagraph" if "cudagraph" in BACKENDS else "trace"
    result = vae.fit(digits.train, epochs=2, batch_size=64, progress=False, compile=backend).train_result
    assert all(math.isfinite(r["train_loss"]) for r in result.history) and len(result.history) == 2
    assert result.step == backend, result.step  # captured, not fallen back to the eager step


@pytest.mark.skipif("cudagraph" not in __import__("probgen.infer.compiled", fromlist=["BACKENDS"]).BACKENDS,
                    reason="no CUDA-graph step in this probgen")
def test_captured_step_gradients_equal_trace_elbo(digits):
    """One batch: the gradients the CUDA graph leaves in ``.grad`` equal ``Trace_ELBO``'s eager ones from the
    same random state (learning rate 0: the parameters stay where both were computed)."""
    from probgen.infer.compiled import CompiledStep, _set_torch_rng, _torch_rng
    from probgen.infer.objective import SVIStep, make_elbo
    from probgen.models import VAE

    vae = VAE(64, z_dim=4, hidden=[32]).to("cuda")
    x = digits.train[:64].to("cuda")
    eager = SVIStep(vae, make_elbo("trace"), lr=0.0)
    step = CompiledStep(eager, backend="cudagraph", elbo="trace")
    for _ in range(5):  # eager first step, the checked steps (traced graph vs eager), the capture
        step(x)
    assert step.active and step.backend == "cudagraph" and step.compiled_steps >= 1
    before = _torch_rng(vae)
    step(x)  # one replay: forward, backward and Adam (lr 0) in one launch
    captured = [p.grad.detach().clone() for p in step.params]
    _set_torch_rng(vae, before)
    eager.backward(x)
    for i, (c, p) in enumerate(zip(captured, step.params)):
        torch.testing.assert_close(c, p.grad, rtol=1e-4, atol=1e-5, msg=f"gradient {i}")


def test_torchrun_nccl_one_rank(tmp_path):
    """``torchrun --nproc_per_node 1 -m probgen train vae --distributed --device cuda``: NCCL on one GPU."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                             "MASTER_PORT")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1", "-m", "probgen",
           "train", "vae", "--data", "digits", "--distributed", "--device", "cuda", "--epochs", "1",
           *FAMILIES["vae"], "--quiet", "--out", str(tmp_path / "d")]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (tmp_path / "d" / "vae.pt").is_file()
    assert any(_cuda(line) for line in proc.stderr.splitlines() if line.startswith("device: "))
