"""Data-parallel training of a catlab network with PyTorch's DistributedDataParallel.

The network is exported with :func:`catlab.interop.to_torch`; ``world_size``
processes on this machine (``torch.multiprocessing.spawn``) each train a copy
on their own shard of the data (``DistributedSampler``), and DDP averages the
gradients over the processes after every backward pass, over the ``gloo``
backend on the loopback address 127.0.0.1 (nothing leaves this machine). The
trained weights come back as a catlab model, through ``.npz`` checkpoints.

With ``world_size=1`` the same loop runs in one process without DDP, which is
the reference: the same seed and the same global batch give the same weights
up to float32 rounding, because the loss is a mean over the batch, so the
average of the per-process gradients is the gradient of the whole batch.

torch is imported only inside the functions that need it, never when catlab is
imported. Chapter 18 of the book shows this module and its results.
"""

from __future__ import annotations

import copy
import numbers
import os
import socket
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from . import _validate as V
from . import checkpoint
from ._io import atomic_write
from ._typing import Array, IntArray
from .nn import Module
from .train import _check_images, _check_labels, _check_model, _num_classes

__all__ = ["free_port", "train_data_parallel"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (chosen by the operating system).

    Returns
    -------
    int

    Examples
    --------
    >>> 0 < free_port() < 65536
    True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _loopback_interface() -> str:
    """The name of the loopback network interface, which gloo is told to use."""
    return "lo0" if sys.platform == "darwin" else "lo"


def _worker(rank, world_size, port, net, x, y, cfg, outdir):
    """One process: train a replica on its shard of (x, y); save it as .npz."""
    import torch
    import torch.distributed as dist
    from torch.nn.functional import cross_entropy
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

    from .interop import from_torch_state_dict, to_torch

    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(cfg["seed"])
    tnet = to_torch(net)  # this process's own copy of the weights
    model = tnet
    if world_size > 1:
        os.environ.setdefault("GLOO_SOCKET_IFNAME", _loopback_interface())
        dist.init_process_group(
            "gloo",
            init_method=f"tcp://127.0.0.1:{port}",
            rank=rank,
            world_size=world_size,
            timeout=timedelta(seconds=cfg["timeout"]),
        )
        model = DistributedDataParallel(tnet)  # copies rank 0's weights to all

    data = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    sampler = DistributedSampler(
        data,
        num_replicas=world_size,
        rank=rank,
        shuffle=True,
        seed=cfg["seed"],
    )
    per_process = cfg["batch_size"] // world_size  # global batch / processes
    loader = DataLoader(data, batch_size=per_process, sampler=sampler)
    opt = torch.optim.SGD(
        model.parameters(),
        lr=cfg["lr"],
        momentum=cfg["momentum"],
    )

    losses, shards = [], []
    model.train()
    start = time.perf_counter()
    for epoch in range(cfg["epochs"]):
        sampler.set_epoch(epoch)  # a new shuffle, the same on every process
        shards.append(np.array(list(sampler)))  # this process's sample indices
        for xb, yb in loader:
            loss = cross_entropy(model(xb), yb)  # mean over the local batch
            opt.zero_grad()
            loss.backward()  # DDP: all-reduce, gradients averaged over ranks
            opt.step()
            losses.append(loss.item())
    seconds = time.perf_counter() - start

    out = Path(outdir)
    weights = from_torch_state_dict(tnet.state_dict())
    checkpoint.save(weights, out / f"weights_rank{rank}.npz")
    with atomic_write(out / f"log_rank{rank}.npz") as f:
        np.savez(
            f,
            losses=np.array(losses),
            seconds=np.array(seconds),
            shards=np.stack(shards),
        )
    if world_size > 1:
        dist.destroy_process_group()


def _check_float(value, name, low, high, low_open=False):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)
    ok = (value > low if low_open else value >= low) and value < high
    if not ok:
        lo = "(" if low_open else "["
        raise ValueError(f"{name} must be in {lo}{low}, {high}), got {value}")
    return value


def train_data_parallel(
    model: Module,
    x: Array,
    y: IntArray,
    *,
    world_size: int = 2,
    epochs: int = 1,
    batch_size: int = 32,
    lr: float = 0.1,
    momentum: float = 0.0,
    seed: int = 0,
    threads: int = 1,
    timeout: float = 120,
) -> dict[str, Any]:
    """Train a copy of a catlab model with PyTorch DDP on ``world_size`` local processes.

    Each process trains a torch copy of ``model`` (:func:`catlab.interop.to_torch`)
    on its shard of the data: ``DistributedSampler`` shuffles the indices with
    ``seed`` (a new shuffle each epoch) and gives process ``r`` every
    ``world_size``-th one, starting at ``r``. Each step, every process takes
    ``batch_size // world_size`` of its samples, computes the mean
    cross-entropy and its gradient, and DDP averages the gradients over the
    processes (``gloo`` on 127.0.0.1) before the SGD step, so every copy stays
    identical. With ``world_size=1`` the same loop runs in one process without
    DDP. Processes are started with ``torch.multiprocessing.spawn``; the data
    reach them as arguments, in memory.

    Parameters
    ----------
    model : catlab.nn.Module
        Of the layers :func:`catlab.interop.to_torch` supports. Not modified.
    x : ndarray of shape (N, ...)
        Training inputs in the model's dtype, e.g. images (N, C, H, W).
        ``N`` must be a multiple of ``world_size`` (equal shards, no padding).
    y : ndarray of int, shape (N,)
        Labels in [0, num_classes).
    world_size : int, default 2
        Number of processes.
    epochs : int, default 1
    batch_size : int, default 32
        The global batch (over all processes), a multiple of ``world_size``.
    lr, momentum : float, default 0.1, 0.0
        ``torch.optim.SGD``'s settings.
    seed : int, default 0
        Seeds the shuffling (and torch, in each process).
    threads : int, default 1
        torch threads per process.
    timeout : int, default 120
        Seconds the processes wait for each other before giving up.

    Returns
    -------
    dict
        ``"model"``: a copy of ``model`` holding the trained weights (those of
        process 0); ``"replica_difference"``: the largest absolute difference
        between any process's weights and process 0's (0 when DDP kept them in
        step); ``"shards"``: int array (world_size, epochs, N // world_size),
        the sample indices each process used; ``"losses"``: array
        (world_size, steps), each process's loss per step; ``"seconds"``: the
        slowest process's training time.

    Raises
    ------
    TypeError, ValueError
        Before any work, naming the argument (as :func:`catlab.train.fit`, and
        for ``batch_size`` or ``N`` not a multiple of ``world_size``).
    ImportError
        If torch is not installed.
    torch.multiprocessing.ProcessRaisedException
        If a process fails (its traceback is included).

    Examples
    --------
    Needs torch and starts processes, so shown rather than run here
    (tests/test_distributed.py runs it)::

        two = train_data_parallel(net, x, y, world_size=2, batch_size=32)
        one = train_data_parallel(net, x, y, world_size=1, batch_size=32)
        # two["model"] and one["model"] hold the same weights up to rounding
    """
    _check_model(model)
    x = _check_images(x, "x", model)
    y = _check_labels(y, "y", len(x), "x", _num_classes(model, x, "x"))
    world_size = V.positive_int(world_size, "world_size")
    epochs = V.positive_int(epochs, "epochs")
    batch_size = V.positive_int(batch_size, "batch_size")
    if batch_size % world_size:
        raise ValueError(
            f"batch_size (the global batch) must be a multiple of world_size={world_size}, got {batch_size}"
        )
    if len(x) % world_size:
        raise ValueError(
            f"x has {len(x)} samples, not a multiple of world_size={world_size}: "
            f"DistributedSampler would repeat samples to even out the shards; "
            f"use x[:{len(x) - len(x) % world_size}]"
        )
    lr = _check_float(lr, "lr", 0.0, np.inf, low_open=True)
    momentum = _check_float(momentum, "momentum", 0.0, 1.0)
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    threads = V.positive_int(threads, "threads")
    timeout = V.positive_int(timeout, "timeout")

    from .interop import to_torch

    to_torch(model)  # ImportError if torch is missing; TypeError for a layer torch lacks
    import torch.multiprocessing as mp

    y = np.ascontiguousarray(y, dtype=np.int64)
    cfg = {
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "momentum": momentum,
        "seed": int(seed),
        "threads": threads,
        "timeout": timeout,
    }
    port = free_port() if world_size > 1 else 0
    with tempfile.TemporaryDirectory(prefix="catlab-ddp-") as outdir:
        # The catlab model and the arrays are pickled into each process's arguments:
        # every process gets its own copy (torch tensors would be shared memory).
        args = (world_size, port, model, x, y, cfg, outdir)
        mp.spawn(_worker, args=args, nprocs=world_size, join=True)
        out = Path(outdir)
        copies = []  # the trained weights, back in catlab
        for r in range(world_size):
            path = out / f"weights_rank{r}.npz"
            copies.append(checkpoint.load(copy.deepcopy(model), path))
        logs = []
        for r in range(world_size):
            with np.load(out / f"log_rank{r}.npz", allow_pickle=False) as f:
                logs.append({k: f[k] for k in f.files})
    ref = copies[0].state_dict()
    diff = max((float(np.abs(c.state_dict()[k] - ref[k]).max()) for c in copies[1:] for k in ref), default=0.0)
    return {
        "model": copies[0],
        "replica_difference": diff,
        "shards": np.stack([g["shards"] for g in logs]),
        "losses": np.stack([g["losses"] for g in logs]),
        "seconds": max(float(g["seconds"]) for g in logs),
    }
