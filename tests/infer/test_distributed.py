"""Multi-process SVI through DistributedDataParallel (probgen.infer.distributed): two real gloo
ranks launched by torchrun.

One torchrun job (about 15-30 s on a shared 2-core box) runs every multi-process check;
the parent process then compares what each rank wrote.
"""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pyro
import pyro.distributions as dist
import pytest
import torch

from probgen.infer.distributed import Distributed, launched, shard

from .torchrun import run_two_ranks

WORKER = textwrap.dedent('''
    import sys
    import pyro, pyro.distributions as dist, torch
    torch.set_num_threads(1)
    from probgen.cli import main
    from probgen.infer.distributed import Distributed
    from probgen.models import VAE
    from probgen.story import Story

    out = sys.argv[1]
    d = Distributed.from_env("cpu")
    r = d.rank

    # 1. fit: each rank starts from different random parameters (seed 100 + rank); rank 0's win.
    #    65 examples, batch 16: the last global batch has one example, so rank 1 gets none.
    torch.manual_seed(0)
    x = (torch.rand(65, 8, 8) > 0.5).float()
    val = (torch.rand(11, 8, 8) > 0.5).float()
    pyro.set_rng_seed(100 + r)
    m = VAE(64, z_dim=2, hidden=[16])
    init = {k: v.clone() for k, v in m.state_dict().items()}
    saves = []
    real_save = m.save
    def counting_save(path, **kw):
        saves.append(str(path))
        return real_save(path, **kw)
    m.save = counting_save
    m.fit(x, val=val, epochs=2, batch_size=16, lr=1e-2, progress=False, patience=None,
          checkpoint=out + "/fit/vae.pt", distributed=d)
    torch.save({"state": m.state_dict(), "init": init, "history": m.train_result.history,
                "saves": saves}, f"{out}/fit_rank{r}.pt")

    # 2. one deterministic story: the gradients of one DDP step equal one process's on the whole
    #    global batch (sum of shard gradients); odd global batches: shards of 17/16 and 16/16
    from probgen.infer.svi import SVIStep

    class Pixels(Story):
        kind = "test_pixels"
        def __init__(self, x_dim: int = 64):
            super().__init__()
            self.logits = torch.nn.Parameter(torch.randn(x_dim))
        def model(self, x=None, y=None):
            self.register_params()
            with pyro.plate("data", len(x)):
                pyro.sample("x", dist.Bernoulli(logits=self.logits).to_event(1), obs=x.reshape(len(x), -1))

    pyro.set_rng_seed(200 + r)
    story = Pixels()
    init_logits = story.logits.detach().clone()
    step = SVIStep(story, pyro.infer.Trace_ELBO(), lr=0.01)
    gen = torch.Generator().manual_seed(r)  # differs per rank: prepare() must hand out rank 0's
    d.prepare(step, gen)
    grads, losses = [], []
    for xb in (x[:33], x[33:]):
        losses.append(step.loss_value(step.backward(xb)))
        grads.append(story.logits.grad.detach().clone())
        step.optim.step()
    torch.save({"init": init_logits, "final": story.logits.detach().clone(), "grads": grads,
                "losses": losses, "gen": gen.get_state()}, f"{out}/sgd_rank{r}.pt")

    # 3. the command line, as a user runs it under torchrun
    code = main(["train", "--out", out + "/cli", "vae", "--data", "digits", "--distributed", "--epochs", "1",
                 "--hidden", "16", "--z-dim", "2", "--batch-size", "64", "--quiet"])
    open(f"{out}/done_rank{r}", "w").write(str(code))
''')


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> Path:
    return run_two_ranks(tmp_path_factory.mktemp("dist"), WORKER, timeout=180)


def _load(path: Path) -> dict:
    return torch.load(path, weights_only=False)


def test_parameters_identical_across_ranks_and_trained(two_ranks):
    r0, r1 = _load(two_ranks / "fit_rank0.pt"), _load(two_ranks / "fit_rank1.pt")
    # the ranks started apart (different seeds) ...
    assert any(not torch.equal(r0["init"][k], r1["init"][k]) for k in r0["init"])
    # ... and ended bit-identical, and actually moved
    for k in r0["state"]:
        assert torch.equal(r0["state"][k], r1["state"][k]), k
    assert any(not torch.equal(r0["state"][k], r0["init"][k]) for k in r0["state"])
    # both ranks saw the same global losses, so early stopping decides alike
    assert r0["history"] == [{**h, "seconds": r0["history"][i]["seconds"]} for i, h in enumerate(r1["history"])]


def test_rank0_alone_writes_checkpoints(two_ranks):
    r0, r1 = _load(two_ranks / "fit_rank0.pt"), _load(two_ranks / "fit_rank1.pt")
    assert r1["saves"] == []
    assert r0["saves"] and all(s.endswith((".pt",)) for s in r0["saves"])
    from probgen.models import load

    model = load(two_ranks / "fit" / "vae.pt")
    last = r0["state"]
    for k, v in model.state_dict().items():  # the best epoch's checkpoint is a trained model
        assert v.shape == last[k].shape


def test_distributed_step_equals_one_process_on_the_global_batch(two_ranks):
    r0, r1 = _load(two_ranks / "sgd_rank0.pt"), _load(two_ranks / "sgd_rank1.pt")
    assert not torch.equal(r0["init"], r1["init"])
    assert torch.equal(r0["final"], r1["final"])
    assert torch.equal(r0["gen"], r1["gen"])  # the batch order generator came from rank 0
    assert r0["losses"] == r1["losses"]

    # the same two Adam steps in this process, on whole global batches, from rank 0's start
    from probgen.infer.svi import SVIStep
    torch.manual_seed(0)
    x = (torch.rand(65, 8, 8) > 0.5).float()
    logits = torch.nn.Parameter(r0["init"].clone())

    def model(xb):
        with pyro.plate("data", len(xb)):
            pyro.sample("x", dist.Bernoulli(logits=logits).to_event(1), obs=xb.reshape(len(xb), -1))

    elbo, opt = pyro.infer.Trace_ELBO(), torch.optim.Adam([logits], lr=0.01)
    for i, xb in enumerate((x[:33], x[33:])):
        opt.zero_grad()
        loss = elbo.differentiable_loss(model, lambda xb: None, xb)
        loss.backward()
        assert float(loss.detach()) == pytest.approx(r0["losses"][i], rel=1e-5)
        torch.testing.assert_close(logits.grad, r0["grads"][i], atol=1e-5, rtol=1e-5)
        opt.step()
    torch.testing.assert_close(logits.detach(), r0["final"], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(logits.detach(), r0["init"])


def test_cli_under_torchrun(two_ranks):
    assert (two_ranks / "done_rank0").read_text() == "0"
    assert (two_ranks / "done_rank1").read_text() == "0"
    assert (two_ranks / "cli" / "vae.pt").is_file()
    assert (two_ranks / "cli" / "vae.last.pt").is_file()


def test_shards_are_distributed_sampler_batches():
    """Strided shards of shared global batches == DistributedSampler's per-rank batches."""
    from torch.utils.data import DistributedSampler

    perm = torch.randperm(48, generator=torch.Generator().manual_seed(3))
    world, per_rank = 2, 4
    for rank in range(world):
        sampler = DistributedSampler(perm.tolist(), num_replicas=world, rank=rank, shuffle=False)
        mine = perm[list(sampler)]
        for k in range(len(perm) // (world * per_rank)):
            glob = perm[k * world * per_rank:(k + 1) * world * per_rank]
            assert torch.equal(shard(glob, rank, world), mine[k * per_rank:(k + 1) * per_rank])
    assert shard(None, 0, 2) is None


def test_needs_torchrun(monkeypatch, tmp_path):
    for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)
    assert not launched()
    with pytest.raises(ValueError, match="torchrun"):
        Distributed.from_env("cpu")
    from probgen.cli import main

    code = main(["train", "--out", str(tmp_path), "vae", "--data", "digits", "--distributed", "--epochs", "1",
                 "--quiet"])
    assert code == 2
    assert not (tmp_path / "vae.pt").exists()


def test_rank_validation():
    with pytest.raises(ValueError, match="rank"):
        Distributed(rank=2, world_size=2, local_rank=0, device="cpu")


# -- GPU readiness, checked without a GPU ---------------------------------------------------
# A tensor made without ``device=`` lands on the CPU and breaks (or silently copies) on CUDA,
# and a host sync per step (``.item()``, ``float(t)``, ``.cpu()``) stalls a GPU. A torch
# function mode sees every such call; only calls made by probgen's own code are counted.
_FACTORIES = {torch.zeros, torch.ones, torch.empty, torch.full, torch.arange, torch.tensor, torch.as_tensor,
              torch.randn, torch.rand, torch.randint, torch.randperm, torch.eye, torch.linspace}
_SYNCS = {torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.cpu, torch.Tensor.numpy, torch.Tensor.__float__,
          torch.Tensor.__int__, torch.Tensor.__bool__}
#: (file:function, factory) made on the CPU on purpose: a seed drawn and turned into an int
_CPU_ON_PURPOSE = {("infer/callbacks.py:batch_order", "randint")}


def _audit_fit(batch_size: int, data) -> tuple[list, int]:
    import linecache

    from torch.overrides import TorchFunctionMode

    from probgen.models import VAE

    class Audit(TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.factories, self.syncs = [], 0

        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func in _FACTORIES or func in _SYNCS:
                caller = sys._getframe(1).f_code  # the code that called torch
                if "/probgen/" in caller.co_filename:
                    where = f"{caller.co_filename.split('/probgen/')[-1]}:{caller.co_name}"
                    if func in _SYNCS:
                        self.syncs += 1
                    elif ("device" not in kwargs and (where, func.__name__) not in _CPU_ON_PURPOSE
                          and not (func is torch.as_tensor and isinstance(args[0], torch.Tensor))):
                        line = linecache.getline(caller.co_filename, sys._getframe(1).f_lineno).strip()
                        self.factories.append(f"{where}: {line}")
            return func(*args, **kwargs)

    pyro.clear_param_store()
    model = VAE(64, z_dim=2, hidden=[16])
    with Audit() as audit:
        model.fit(data.train[:128], val=data.val[:32], epochs=2, batch_size=batch_size, lr=1e-2,
                  progress=False, patience=None)
        model.log_prob(data.test[:8], num_samples=4)
        model.sample(4)
        model.sample(4, mean=True)
    return audit.factories, audit.syncs


def test_svi_path_is_device_clean(digits):
    """Every tensor probgen makes in fit/log_prob/sample follows the model's device, and the
    number of host syncs does not grow with the number of steps (none inside the step loop)."""
    factories, syncs_4_steps = _audit_fit(64, digits)
    assert factories == [], "tensors created without device=: " + "; ".join(factories)
    _, syncs_16_steps = _audit_fit(16, digits)
    assert syncs_16_steps == syncs_4_steps
