"""The GAN under DistributedDataParallel (probgen.infer.distributed.GameShards, fit_adversarial's
``distributed=``): two real gloo ranks launched by torchrun.

One torchrun job runs every multi-process check; the parent process then replays the same steps
in one process and compares with what each rank wrote.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

from probgen.infer.adversarial import fit_adversarial, make_optimizers, train_step
from probgen.models import GAN

from .torchrun import run_two_ranks

#: (loss, GAN options, train_step options): each checks one D/G path under DDP
CASES = {
    "nonsat": ("non-saturating", {"ema": 0.5}, {"smoothing": 0.1, "noise": 0.1}),
    "wgan": ("wgan-gp", {}, {"gp_weight": 10.0}),  # the gradient penalty's double backward, 2 critic steps
    "hinge": ("hinge", {"spectral_norm": True}, {}),  # parametrised weights and their u/v buffers
}
#: two rounds, odd global batches: shards of 9/8 and 8/8 examples
ROUNDS = (17, 16)

WORKER = textwrap.dedent('''
    import sys
    import torch
    torch.set_num_threads(1)
    from probgen.cli import main
    from probgen.infer.adversarial import make_optimizers, train_step
    from probgen.infer.distributed import Distributed
    from probgen.models import GAN

    out, cases, rounds = sys.argv[1], eval(sys.argv[2]), eval(sys.argv[3])
    d = Distributed.from_env("cpu")
    r = d.rank
    torch.manual_seed(0)
    x = torch.rand(sum(rounds) * 2, 8, 8)

    def recorder(opt, sink):
        params = [p for g in opt.param_groups for p in g["params"]]
        opt.register_step_pre_hook(lambda *_: sink.append([p.grad.detach().clone() for p in params]))

    # 1. one round at a time: D and G gradients of every step, from rank 0's start
    for name, (loss, opts, game) in cases.items():
        torch.manual_seed(100 + r)  # ranks start apart; prepare_game hands out rank 0's everything
        gan = GAN("mlp", x_shape=[8, 8], z_dim=4, hidden=[16], loss=loss, **opts)
        opt_d, opt_g = make_optimizers(gan, 1e-2)
        gen = torch.Generator().manual_seed(r)
        nets = d.prepare_game(gan, gen)
        init = {k: v.clone() for k, v in gan.state_dict().items()}
        rng = torch.get_rng_state()
        gd, gg, stats = [], [], []
        recorder(opt_d, gd)
        recorder(opt_g, gg)
        k = 2 if loss == "wgan-gp" else 1
        start = 0
        for n in rounds:
            batches = [x[start + i * n:start + (i + 1) * n] for i in range(k)]
            start += k * n
            stats.append(train_step(gan, batches, opt_d, opt_g, batch_size=n, nets=nets, **game))
        torch.save({"init": init, "rng": rng, "gd": gd, "gg": gg, "stats": stats, "gen": gen.get_state(),
                    "final": gan.state_dict()}, f"{out}/{name}_rank{r}.pt")
    del nets  # DDP modules must not outlive the process group (a global would, past exit)

    # 2. fit: checkpoints from rank 0 alone, the monitor on rank 0 alone, resume == uninterrupted
    def fit(epochs, path, resume=False, seed=100):
        torch.manual_seed(seed + r)
        gan = GAN("mlp", x_shape=[8, 8], z_dim=4, hidden=[16], ema=0.5)
        saves, calls = [], []
        real_save = gan.save
        gan.save = lambda p, **kw: saves.append(str(p)) or real_save(p, **kw)
        gan.fit(x[:40], epochs=epochs, batch_size=16, lr=1e-2, progress=False, checkpoint=path, resume=resume,
                monitor=lambda s: calls.append(r) or {"coverage": 1.0}, distributed=d)
        return gan, saves, calls

    full, saves, calls = fit(2, out + "/full/gan.pt")
    fit(1, out + "/part/gan.pt")
    resumed, _, _ = fit(2, out + "/part/gan.pt", resume=True, seed=500)
    torch.save({"full": full.state_dict(), "resumed": resumed.state_dict(), "saves": saves, "calls": calls,
                "history": full.train_result.history, "agree": d.agree(r == 1)}, f"{out}/fit_rank{r}.pt")

    # 3. the command line, as a user runs it under torchrun (dcgan: batch norm per shard)
    code = main(["train", "--out", out + "/cli", "gan", "--data", "digits", "--distributed", "--epochs", "1",
                 "--train-size", "64", "--batch-size", "32", "--hidden", "8,16", "--z-dim", "4", "--quiet"])
    open(f"{out}/done_rank{r}", "w").write(str(code))
''')


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> Path:
    return run_two_ranks(tmp_path_factory.mktemp("dist_gan"), WORKER, repr(CASES), repr(ROUNDS), timeout=240)


def _load(path: Path) -> dict:
    return torch.load(path, weights_only=False)


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bit-identical (an unset Parzen bandwidth is NaN on both sides)."""
    return a.shape == b.shape and bool(((a == b) | (a.isnan() & b.isnan())).all())


@pytest.mark.parametrize("name", list(CASES))
def test_ddp_gradients_equal_one_process_on_the_global_batch(two_ranks, name):
    loss, opts, game = CASES[name]
    r0, r1 = _load(two_ranks / f"{name}_rank0.pt"), _load(two_ranks / f"{name}_rank1.pt")
    # every rank took rank 0's weights, batch order and random state, and ended bit-identical
    for key in r0["init"]:
        assert _same(r0["init"][key], r1["init"][key]), key
        assert _same(r0["final"][key], r1["final"][key]), key
    assert torch.equal(r0["rng"], r1["rng"]) and torch.equal(r0["gen"], r1["gen"])
    assert r0["stats"] == r1["stats"]

    # the same rounds in this process, on whole global batches, from rank 0's start and noise
    torch.manual_seed(7)
    gan = GAN("mlp", x_shape=[8, 8], z_dim=4, hidden=[16], loss=loss, **opts)
    gan.load_state_dict(r0["init"])
    opt_d, opt_g = make_optimizers(gan, 1e-2)
    grads = {"gd": [], "gg": []}
    for opt, key in ((opt_d, "gd"), (opt_g, "gg")):
        params = [p for g in opt.param_groups for p in g["params"]]
        opt.register_step_pre_hook(lambda *_, ps=params, k=key: grads[k].append([p.grad.clone() for p in ps]))
    torch.manual_seed(0)
    x = torch.rand(sum(ROUNDS) * 2, 8, 8)
    torch.set_rng_state(r0["rng"])
    k, start = (2 if loss == "wgan-gp" else 1), 0
    for i, n in enumerate(ROUNDS):
        stats = train_step(gan, [x[start + j * n:start + (j + 1) * n] for j in range(k)], opt_d, opt_g,
                           batch_size=n, **game)
        start += k * n
        for key, v in stats.items():
            assert v == pytest.approx(r0["stats"][i][key], rel=1e-5, abs=1e-6), key
    for key in ("gd", "gg"):
        assert len(grads[key]) == len(r0[key]) == k * len(ROUNDS) // (k if key == "gg" else 1)
        for mine, theirs in zip(grads[key], r0[key]):
            for a, b in zip(mine, theirs):
                torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
    assert any(float(g.abs().max()) > 1e-4 for step in r0["gg"] for g in step)  # not a vacuous match
    for key, v in gan.state_dict().items():
        torch.testing.assert_close(r0["final"][key], v, atol=1e-5, rtol=1e-5, equal_nan=True)


def test_fit_rank0_writes_and_monitors_and_resume_is_exact(two_ranks):
    r0, r1 = _load(two_ranks / "fit_rank0.pt"), _load(two_ranks / "fit_rank1.pt")
    assert r1["saves"] == [] and r1["calls"] == []
    assert r0["saves"] and r0["calls"] == [0, 0]  # one monitor call per epoch, on rank 0
    assert r0["history"] == r1["history"][:0] + r0["history"] and len(r0["history"]) == 2
    assert [h["d_loss"] for h in r0["history"]] == [h["d_loss"] for h in r1["history"]]
    for key, v in r0["full"].items():
        assert _same(v, r1["full"][key]), key
        assert _same(v, r0["resumed"][key]), key  # 1 epoch + resume to 2 == 2 epochs
    assert (two_ranks / "full" / "gan.pt").is_file() and (two_ranks / "full" / "gan.last.pt").is_file()
    assert r0["agree"] is False and r1["agree"] is False  # rank 0's stop decision everywhere


def test_cli_train_gan_under_torchrun(two_ranks):
    assert (two_ranks / "done_rank0").read_text() == "0"
    assert (two_ranks / "done_rank1").read_text() == "0"
    cli = two_ranks / "cli"
    assert (cli / "gan.pt").is_file() and (cli / "gan.last.pt").is_file()
    assert len(list((cli / "gan_grids").glob("*.png"))) == 1
    from probgen.models import load

    model = load(cli / "gan.pt")
    assert model.sample(4).shape == (4, 8, 8)


def test_distributed_needs_a_data_tensor():
    gan = GAN("mlp", x_shape=[2], z_dim=2, hidden=[8], output="linear")
    with pytest.raises(ValueError, match="distributed need epochs="):
        fit_adversarial(gan, lambda n: torch.randn(n, 2), steps=1, distributed=object(), progress=False)


def test_train_gan_distributed_needs_torchrun(monkeypatch, tmp_path):
    for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)
    from probgen.cli import main

    code = main(["train", "--out", str(tmp_path), "gan", "--data", "digits", "--distributed", "--epochs", "1",
                 "--quiet"])
    assert code == 2
    assert not (tmp_path / "gan.pt").exists()
