"""Data-parallel training under `torchrun`: process group from the environment, batch sharding, metric sums.

Every rank runs the same recipe with the same seed, so every rank builds the same global batches; each rank
then trains on its own slice of each batch (a DistributedSampler-equivalent split that needs no change in
the recipes), and DistributedDataParallel averages the gradients. Losses are scaled by the slice's share
of the batch, so for a loss that is a mean over samples the update equals one process on the whole batch,
even when the batch does not split evenly. Batches smaller than the world size (the localiser trains on one
scan per step) are dealt round-robin instead: rank r takes batch r of each group of N.

Losses that are not per-sample means (the Cox partial likelihood ranks within the batch) become the
average of per-slice losses, the usual data-parallel approximation. BatchNorm layers are synchronised on
CUDA only (SyncBatchNorm has no CPU kernel); on CPU each rank normalises its own slice.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch
import torch.distributed as dist

from ..models import store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Context:
    """Where this process stands in the job; the defaults mean a plain single process."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def primary(self) -> bool:
        """Only this rank logs, reports progress and writes checkpoints and models."""
        return self.rank == 0


def context() -> Context:
    if dist.is_available() and dist.is_initialized():
        return Context(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return Context()


def init_from_env(device_choice: str = "auto") -> Context:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT):
    NCCL with one GPU per local rank when CUDA is used, gloo on CPU. A single process stays as it is."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or not dist.is_available() or dist.is_initialized():
        return context()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device_choice != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local)
    dist.init_process_group("nccl" if cuda else "gloo")
    ctx = context()
    log.info("rank %d of %d (%s)", ctx.rank, ctx.world, dist.get_backend())
    return ctx


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: Context) -> None:
    if ctx.active:
        dist.barrier()


def save_model_once(folder: str | Path, model: torch.nn.Module, card: dict) -> store.ModelEntry:
    """Rank 0 writes the model folder; the other ranks wait for it and read the finished folder."""
    job = context()
    entry = store.save_model(folder, model, card) if job.primary else None
    barrier(job)
    return entry or store.read_entry(folder)


def wrap(model: torch.nn.Module, ctx: Context) -> torch.nn.Module:
    """The module the training step calls: DDP around `model` in a job, `model` itself otherwise."""
    if not ctx.active:
        return model
    device = next(model.parameters()).device
    if device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index or 0])
    return torch.nn.parallel.DistributedDataParallel(model)


def batch_len(batch) -> int:
    """Samples in a batch: a tensor or array (leading axis), or a tuple/list of them (the first one's)."""
    if isinstance(batch, (tuple, list)):
        return batch_len(batch[0])
    return int(batch.shape[0]) if hasattr(batch, "shape") else len(batch)


def _slice(batch, start: int, stop: int):
    if isinstance(batch, (tuple, list)):
        return type(batch)(_slice(b, start, stop) for b in batch)
    return batch[start:stop]


def shards(batches: Iterable, ctx: Context) -> Iterator[tuple[object, float]]:
    """(this rank's part, its share of the global batch) per optimiser step; share 1 without a job."""
    if not ctx.active:
        for batch in batches:
            yield batch, 1.0
        return
    pending: list = []
    for batch in batches:
        n = batch_len(batch)
        if n >= ctx.world:
            bounds = np.linspace(0, n, ctx.world + 1).round().astype(int)
            yield _slice(batch, bounds[ctx.rank], bounds[ctx.rank + 1]), float(bounds[ctx.rank + 1] - bounds[ctx.rank]) / n
            continue
        pending.append(batch)
        if len(pending) == ctx.world:  # a trailing incomplete group is dropped on every rank alike
            sizes = [batch_len(b) for b in pending]
            yield pending[ctx.rank], sizes[ctx.rank] / sum(sizes)
            pending = []


def all_sum(values: list[float], ctx: Context, device: torch.device) -> list[float]:
    """Element-wise sum over ranks (NCCL needs the tensor on the GPU)."""
    if not ctx.active:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def broadcast(values: list[float], ctx: Context, device: torch.device) -> list[float]:
    """Rank 0's values on every rank (decisions such as 'improved' and 'stop' must agree)."""
    if not ctx.active:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.broadcast(tensor, src=0)
    return tensor.tolist()
