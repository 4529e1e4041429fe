"""Training benchmark: catlab against the identical PyTorch network, in the same run, at equal threads.

Run ``python -m catlab.bench_train`` (``--help`` for options). Two experiments:

1. LeNet-5 (conv 6@5x5 pad 2, ReLU, max pool 2, conv 16@5x5, ReLU, max pool 2,
   linear 400-120-84-10) on :func:`catlab.datasets.mnist_sample` (4,000 train /
   1,000 test). Target: at least 97% test accuracy.
2. A small ConvNet on :func:`catlab.datasets.digits`. Target: at least 97%.

Both frameworks start from the same weights (moved with :mod:`catlab.interop`)
and see the same augmented images in the same order each epoch (SGD with
Nesterov momentum, weight decay, a step learning-rate schedule). Epochs
alternate between catlab and torch so that both see the same machine load.
Printed: seconds per epoch (training only), images per second, the ratio of
catlab's time to torch's (target at most 1.0), and test accuracy after every
epoch. torch is optional: without it only catlab's figures are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

from . import __version__, datasets, nn
from .optim import SGD
from .train import evaluate, fit


def lenet5(seed: int = 0) -> nn.Sequential:
    """LeNet-5 with ReLU and max pooling for 1x28x28 inputs."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2, rng=seed),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5, rng=seed + 1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(400, 120, rng=seed + 2),
        nn.ReLU(),
        nn.Linear(120, 84, rng=seed + 3),
        nn.ReLU(),
        nn.Linear(84, 10, rng=seed + 4),
    )


def digits_net(seed: int = 0) -> nn.Sequential:
    """Two 3x3 convolutions, a max pool and two linear layers for 1x8x8 inputs."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, rng=seed),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1, rng=seed + 1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(512, 64, rng=seed + 2),
        nn.ReLU(),
        nn.Linear(64, 10, rng=seed + 3),
    )


EXPERIMENTS = {
    # name: (data loader, model, epochs, batch size, lr0, decay every, shift, weight decay)
    "mnist": dict(
        title="LeNet-5 on the MNIST sample",
        data=datasets.mnist_sample,
        model=lenet5,
        epochs=10,
        batch_size=32,
        lr=0.05,
        every=4,
        shift=2,
        weight_decay=5e-4,
    ),
    "digits": dict(
        title="small ConvNet on digits()",
        data=datasets.digits,
        model=digits_net,
        epochs=20,
        batch_size=32,
        lr=0.05,
        every=7,
        shift=1,
        weight_decay=5e-4,
    ),
}


def set_threads(n: int, blas: int = 1) -> dict:
    """Use ``n`` threads in catlab (:func:`catlab.set_num_threads`) and ``blas`` in every BLAS.

    BLAS defaults to one thread: catlab's threads already do the parallel
    work, and a multi-threaded BLAS beside them steals their cores (the
    kernels keep their own BLAS single-threaded in any case).
    """
    from . import _threads, get_num_threads, set_num_threads

    set_num_threads(n)
    _threads.blas_limit(blas).__enter__()  # for the rest of the run: never restored
    blas_info = blas if _threads._blas_libs() != ([], []) else "unchanged (threadpoolctl not installed)"
    return {"threads": n, "catlab_threads": get_num_threads(), "blas_threads": blas_info}


class _TorchRunner:
    """The same network in torch, trained with the same data order and optimizer settings."""

    def __init__(self, model, cfg, threads):
        import torch

        from .interop import to_torch

        torch.set_num_threads(threads)
        self.torch = torch
        self.net = to_torch(model)
        self.opt = torch.optim.SGD(
            self.net.parameters(), lr=cfg["lr"], momentum=0.9, nesterov=True, weight_decay=cfg["weight_decay"]
        )

    def epoch(self, x, y, batch_size, lr, seed):
        torch = self.torch
        for g in self.opt.param_groups:
            g["lr"] = lr
        self.net.train()
        order = np.random.default_rng(seed).permutation(len(x))  # as catlab.train.fit draws it
        start = time.perf_counter()
        for s in range(0, len(x), batch_size):
            idx = order[s : s + batch_size]
            loss = torch.nn.functional.cross_entropy(self.net(torch.from_numpy(x[idx])), torch.from_numpy(y[idx]))
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
        return time.perf_counter() - start

    def accuracy(self, x, y):
        self.net.eval()
        with self.torch.no_grad():
            return float((self.net(self.torch.from_numpy(x)).argmax(1).numpy() == y).mean())


def run(name, threads, epochs=None, subset=None, use_torch=True, seed=0, out=print):
    """Train one experiment with catlab (and torch), printing a line per epoch; return the figures."""
    cfg = dict(EXPERIMENTS[name])
    epochs = cfg["epochs"] if epochs is None else epochs
    (x, y), (xt, yt) = cfg["data"]()
    if subset:
        x, y, xt, yt = x[:subset], y[:subset], xt[:subset], yt[:subset]
    bs = cfg["batch_size"]
    model = cfg["model"](seed)
    runner = _TorchRunner(model, cfg, threads) if use_torch else None
    opt = SGD(model.parameters(), lr=cfg["lr"], momentum=0.9, nesterov=True, weight_decay=cfg["weight_decay"])

    # warm-up (Numba compilation or cache loading, torch's first calls) on throwaway copies
    warm = cfg["model"](seed + 100)
    fit(warm, x[: 2 * bs], y[: 2 * bs], 1, bs, SGD(warm.parameters(), lr=0.01), progress=False)
    if use_torch:
        _TorchRunner(warm, cfg, threads).epoch(x[: 2 * bs], y[: 2 * bs], bs, 0.01, 0)

    out(
        f"\n{cfg['title']}: {len(x)} train / {len(xt)} test, batch {bs}, {epochs} epochs, "
        f"SGD(lr={cfg['lr']}, momentum=0.9, nesterov, weight_decay={cfg['weight_decay']}), "
        f"lr x0.3 every {cfg['every']} epochs, random shifts up to {cfg['shift']} px"
    )
    out(f"{'epoch':>5} {'catlab s':>9} {'torch s':>8} {'ratio':>6} {'catlab acc':>10} {'torch acc':>9}")
    aug = np.random.default_rng(seed)
    res = {"catlab_seconds": [], "torch_seconds": [], "catlab_acc": [], "torch_acc": []}
    for e in range(epochs):
        lr = cfg["lr"] * 0.3 ** (e // cfg["every"])
        xa = datasets.random_shift(x, cfg["shift"], aug)
        opt.lr = lr
        h = fit(model, xa, y, 1, bs, opt, seed=seed + e, progress=False)
        res["catlab_seconds"].append(h["seconds"][0])
        res["catlab_acc"].append(evaluate(model, xt, yt)["accuracy"])
        line = f"{e + 1:>5} {h['seconds'][0]:>9.2f}"
        if use_torch:
            ts = runner.epoch(xa, y, bs, lr, seed + e)
            res["torch_seconds"].append(ts)
            res["torch_acc"].append(runner.accuracy(xt, yt))
            line += (
                f" {ts:>8.2f} {h['seconds'][0] / ts:>6.2f} {res['catlab_acc'][-1]:>10.4f} {res['torch_acc'][-1]:>9.4f}"
            )
        else:
            line += f" {'-':>8} {'-':>6} {res['catlab_acc'][-1]:>10.4f} {'-':>9}"
        out(line)
    res.update(name=name, images=len(x))
    for stat, f in (("median", statistics.median), ("best", min)):
        c = f(res["catlab_seconds"])
        res[f"catlab_{stat}_s"], res[f"catlab_{stat}_img_s"] = c, len(x) / c
        summary = f"{stat} epoch: catlab {c:.2f} s ({len(x) / c:,.0f} img/s)"
        if use_torch:
            t = f(res["torch_seconds"])
            res[f"torch_{stat}_s"], res[f"torch_{stat}_img_s"], res[f"{stat}_ratio"] = t, len(x) / t, c / t
            summary += (
                f", torch {t:.2f} s ({len(x) / t:,.0f} img/s); catlab/torch time ratio {c / t:.2f} (target <= 1.0)"
            )
        out(summary)
    acc = res["catlab_acc"][-1]
    out(
        f"test accuracy after {epochs} epochs: catlab {acc:.4f} ({'meets' if acc >= 0.97 else 'MISSES'} the "
        f"0.97 target)" + (f", torch {res['torch_acc'][-1]:.4f}" if use_torch else "")
    )
    return res


def main(argv=None):
    """Command-line entry point; returns 0."""
    ap = argparse.ArgumentParser(prog="python -m catlab.bench_train", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--threads", type=int, default=None, help="threads for catlab and torch (default: catlab.get_num_threads())"
    )
    ap.add_argument(
        "--blas-threads",
        type=int,
        default=1,
        help="threads for BLAS calls (default 1: catlab's threads do the parallel work)",
    )
    ap.add_argument("--only", choices=sorted(EXPERIMENTS), help="run one experiment")
    ap.add_argument("--epochs", type=int, help="override every experiment's epoch count")
    ap.add_argument("--subset", type=int, help="use only the first N train and test images (a smoke test)")
    ap.add_argument("--no-torch", action="store_true", help="time catlab only")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    args = ap.parse_args(argv)
    if args.threads is None:
        from . import get_num_threads

        args.threads = get_num_threads()
    use_torch = not args.no_torch
    if use_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("torch is not installed: timing catlab only")
            use_torch = False
    info = set_threads(args.threads, args.blas_threads)
    if use_torch:
        import torch

        torch.set_num_threads(args.threads)
    import numba

    versions = f"catlab {__version__}, numpy {np.__version__}, numba {numba.__version__}"
    if use_torch:
        import torch

        versions += f", torch {torch.__version__} ({torch.get_num_threads()} threads)"
    print(f"{versions}; Python {platform.python_version()}, {os.cpu_count()} CPUs")
    print(
        f"threads: catlab {info['catlab_threads']}, BLAS {info['blas_threads']}; load average {os.getloadavg()[0]:.2f}"
    )
    results = [
        run(n, args.threads, args.epochs, args.subset, use_torch) for n in sorted(EXPERIMENTS) if args.only in (None, n)
    ]
    if args.json:
        from ._io import atomic_write

        with atomic_write(args.json) as f:
            f.write(json.dumps({"info": info, "versions": versions, "results": results}, indent=1).encode())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
