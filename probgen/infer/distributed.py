"""Multi-process SVI on PyTorch's own engine: ``torch.distributed`` launched by ``torchrun``.

One process per CPU socket share or per GPU (``gloo`` on CPU, ``NCCL`` on GPU). Every
process ("rank") builds the same model from the same seed, holds the whole training
tensor (moved to its device once) and walks the same shuffled order of *global*
batches; each rank computes the ELBO gradient of its strided shard ``batch[rank::W]``
of every global batch (what ``DistributedSampler`` gives, without padding: no example
counts twice). The shard gradients are summed with one ``all_reduce`` per step, so
every rank applies the gradient of the whole global batch -- Pyro's losses are sums
over the ``data`` plate, so the sum (not the mean) is the gradient of the same
objective a single process with ``batch_size`` optimises -- and the ranks stay
bit-identical. Rank 0 alone shows the progress bar and writes checkpoints.

Launch::

    torchrun --nproc_per_node=2 -m probgen train vae --data digits --distributed

Use from Python (inside a ``torchrun`` job)::

    from probgen.infer.distributed import Distributed
    dist = Distributed.from_env("cpu")      # or "cuda": rank r uses cuda:LOCAL_RANK
    model = VAE(64).to(dist.device)
    model.fit(x, distributed=dist, checkpoint="vae.pt")   # rank 0 writes vae.pt

The hook in :func:`probgen.infer.svi.fit_svi` is small: ``distributed.prepare`` replaces
``svi.step`` with :meth:`Distributed.step`, ``distributed.mean_loss`` replaces the
validation loss, and non-zero ranks get no progress bar and no checkpoint paths.
"""
from __future__ import annotations

import atexit
import os
from datetime import timedelta
from typing import Callable

import pyro
import pyro.infer
import pyro.poutine as poutine
import torch
import torch.distributed as tdist

__all__ = ["Distributed", "launched", "shard"]

#: environment variables that torchrun sets in every process it starts
LAUNCH_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def launched() -> bool:
    """True inside a process started by ``torchrun`` (or with its environment variables set)."""
    return all(k in os.environ for k in LAUNCH_ENV)


def shard(x: torch.Tensor | None, rank: int, world_size: int) -> torch.Tensor | None:
    """Rows ``rank, rank + W, rank + 2W, ...`` of ``x`` (a view; ``None`` stays ``None``).

    Applied to every batch of one shared shuffled order, this is ``DistributedSampler``'s
    ``indices[rank::W]`` without the padding.
    """
    return None if x is None else x[rank::world_size]


class Distributed:
    """This process's place in a ``torch.distributed`` job, and the SVI step that keeps
    all ranks in lockstep.

    Build it with :meth:`from_env` (reads ``torchrun``'s ``RANK``, ``WORLD_SIZE``,
    ``LOCAL_RANK``) and pass it as ``fit(..., distributed=...)``.

    :param rank: this process's index in ``0..world_size-1``.
    :param world_size: number of processes.
    :param local_rank: index on this machine (selects the GPU).
    :param device: where this rank's model, data and collectives live.
    """

    def __init__(self, *, rank: int, world_size: int, local_rank: int, device: torch.device):
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
        self.rank, self.world_size, self.local_rank = rank, world_size, local_rank
        self.device = torch.device(device)
        self._svi: pyro.infer.SVI | None = None
        self._params: dict[str, torch.Tensor] | None = None  # param-store name -> unconstrained tensor

    # -- set-up ---------------------------------------------------------------------------
    @classmethod
    def from_env(cls, device: str | torch.device = "cpu", *, backend: str | None = None,
                 timeout_s: float = 1800.0) -> "Distributed":
        """Join the ``torchrun`` job this process belongs to (initialising the process group once).

        :param device: ``cpu`` or ``cuda``; with CUDA, rank ``r`` uses ``cuda:LOCAL_RANK``
            whatever index was given.
        :param backend: ``gloo`` or ``nccl`` (default: ``nccl`` for CUDA, ``gloo`` for CPU).
        :param timeout_s: how long a collective may wait for a missing rank.
        :raises ValueError: not started by ``torchrun``, or no GPU for this rank.
        """
        if not launched():
            raise ValueError("--distributed needs a torchrun launch "
                             "(torchrun --nproc_per_node=N -m probgen train ...); RANK/WORLD_SIZE are not set")
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local = int(os.environ.get("LOCAL_RANK", rank))
        try:
            dev = torch.device(device)
        except RuntimeError:
            raise ValueError(f"--device {device!r}: not a device (use cpu or cuda)") from None
        if dev.type == "cuda":
            if not torch.cuda.is_available():
                raise ValueError(f"--device {device}: CUDA is not available on this machine")
            if local >= torch.cuda.device_count():
                raise ValueError(f"LOCAL_RANK {local} needs GPU {local}, but only "
                                 f"{torch.cuda.device_count()} are visible: use --nproc_per_node <= GPUs")
            dev = torch.device("cuda", local)
            torch.cuda.set_device(dev)
        elif dev.type != "cpu":
            raise ValueError(f"--device {device}: distributed training supports cpu and cuda")
        backend = backend or ("nccl" if dev.type == "cuda" else "gloo")
        if not tdist.is_initialized():
            tdist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s),
                                     device_id=dev if dev.type == "cuda" else None)
            atexit.register(_shutdown)
        return cls(rank=tdist.get_rank(), world_size=tdist.get_world_size(), local_rank=local, device=dev)

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that prints and writes files."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if self.device.type == "cuda":
            tdist.barrier(device_ids=[self.device.index])
        else:
            tdist.barrier()

    def broadcast_(self, tensors) -> None:
        """Overwrite ``tensors`` (in place, any dtype) with rank 0's values."""
        with torch.no_grad():
            for t in tensors:
                src = t.detach()  # same storage as t
                buf = src if src.device == self.device and src.is_contiguous() else src.contiguous().to(self.device)
                tdist.broadcast(buf, src=0)
                if buf.data_ptr() != src.data_ptr():
                    src.copy_(buf)

    def broadcast_object(self, obj):
        """Rank 0's value of a small picklable ``obj`` on every rank."""
        box = [obj]
        tdist.broadcast_object_list(box, src=0, device=self.device if self.device.type == "cuda" else None)
        return box[0]

    def prepare(self, story: torch.nn.Module, svi: pyro.infer.SVI, generator: torch.Generator) -> Callable:
        """Called by :func:`probgen.infer.svi.fit_svi` before the first epoch: give every rank
        rank 0's parameters, buffers and batch order, give each rank its own noise
        stream, and return the step function that replaces ``svi.step``.

        :param story: the model being trained (already on :attr:`device`).
        :param svi: the ``pyro.infer.SVI`` object whose ELBO and optimizer are used.
        :param generator: the CPU generator that shuffles the global batches (set in place).
        """
        if story.device != self.device:
            raise ValueError(f"the model is on {story.device}, but this rank trains on {self.device}: "
                             f"move it with model.to(dist.device) first")
        self._svi, self._params = svi, None
        self.broadcast_(story.state_dict().values())  # identical start, whatever each rank drew
        generator.set_state(self.broadcast_object(generator.get_state()))
        # the latent noise must differ between ranks (else shard i and j share their z draws)
        base = self.broadcast_object(int(torch.randint(0, 2**31 - 1, (1,))))
        pyro.set_rng_seed(base + self.rank)
        return self.step

    # -- the training step ----------------------------------------------------------------
    def step(self, x: torch.Tensor, y: torch.Tensor | None = None) -> float:
        """One SVI step on a global batch: this rank's shard → ELBO gradients → all-reduce
        (sum) → the Pyro optimizer, as ``SVI.step`` does on one process.

        :param x: the global batch ``[B, ...]`` (every rank passes the same one).
        :param y: its labels ``[B]`` or ``None``.
        :return: the loss of the whole global batch (the same float on every rank).
        """
        if self._svi is None:
            raise RuntimeError("Distributed.step before prepare()")
        svi = self._svi
        xs, ys = shard(x, self.rank, self.world_size), shard(y, self.rank, self.world_size)
        if self._params is None:
            self._params = self._discover(xs, ys)
        loss = 0.0
        if len(xs):  # the last global batch can leave a rank nothing: it adds zeros
            with poutine.trace(param_only=True) as capture:
                loss = svi.loss_and_grads(svi.model, svi.guide, xs, ys)
            extra = set(capture.trace.nodes) - set(self._params)
            if extra:
                raise RuntimeError(f"parameters {sorted(extra)[:3]} appeared after the first step; "
                                   "distributed training needs every parameter created in the first step")
        params = list(self._params.values())
        # one flat buffer: [grads..., has_grad flags..., loss] -> a single collective per step
        sizes = [p.numel() for p in params]
        n_grad = sum(sizes)
        dtype = params[0].dtype if len({p.dtype for p in params}) == 1 else torch.float64
        flat = torch.zeros(n_grad + len(params) + 1, dtype=dtype, device=self.device)
        offset = 0
        for i, (p, n) in enumerate(zip(params, sizes)):
            if p.grad is not None:
                flat[offset:offset + n].copy_(p.grad.reshape(-1))
                flat[n_grad + i].fill_(1.0)
            offset += n
        flat[-1].fill_(float(loss))  # fills, not host-to-device copies
        tdist.all_reduce(flat, op=tdist.ReduceOp.SUM)
        *touched, total = flat[n_grad:].tolist()  # the one device-to-host sync per step (SVI.step has it too)
        offset = 0
        for p, n, hit in zip(params, sizes, touched):
            # a parameter no rank touched keeps grad None, so Adam skips it as on one process
            p.grad = flat[offset:offset + n].view_as(p).to(p.dtype) if hit > 0 else None
            offset += n
        svi.optim(params)
        pyro.infer.util.zero_grads(params)
        return total

    def _discover(self, xs, ys) -> dict[str, torch.Tensor]:
        """Run the model and guide once without gradients to create every parameter, then
        copy rank 0's values to all ranks (covers ``pyro.param`` sites created lazily)."""
        svi = self._svi
        with poutine.trace(param_only=True) as capture, torch.no_grad():
            if len(xs):
                svi.loss(svi.model, svi.guide, xs, ys)
        names = self.broadcast_object(sorted(capture.trace.nodes))
        mine = {name: site["value"].unconstrained() for name, site in capture.trace.nodes.items()}
        if not len(xs) or set(mine) != set(names):
            store = pyro.get_param_store()
            mine = {name: store[name].unconstrained() for name in names}
        params = {name: mine[name] for name in names}  # the same order on every rank
        self.broadcast_(params.values())
        return params

    # -- validation -----------------------------------------------------------------------
    def mean_loss(self, elbo, story, x: torch.Tensor, y: torch.Tensor | None, batch_size: int) -> float:
        """Loss per example over ``x``, each rank scoring its shard (the same float everywhere,
        so early stopping decides alike on every rank)."""
        xs, ys = shard(x, self.rank, self.world_size), shard(y, self.rank, self.world_size)
        total = 0.0
        with torch.no_grad():
            for start in range(0, len(xs), batch_size):
                yb = None if ys is None else ys[start:start + batch_size]
                total += float(elbo.loss(story.model, story.guide, xs[start:start + batch_size], yb))
        t = torch.tensor([total], dtype=torch.float64, device=self.device)
        tdist.all_reduce(t, op=tdist.ReduceOp.SUM)
        return float(t) / len(x)

    def __repr__(self) -> str:
        return f"Distributed(rank={self.rank}, world_size={self.world_size}, device={self.device})"


def _shutdown() -> None:
    if tdist.is_available() and tdist.is_initialized():
        tdist.destroy_process_group()
