"""Benchmark Winograd against catlab's current conv2d and PyTorch on 3x3, stride-1 layers.

Run ``python -m catlab.bench_winograd`` (``--help`` for the options). In one
process, at the same number of threads for every contender, it

1. measures the float32 matrix-multiply peak (as :mod:`catlab.bench` does);
2. for every workload checks :func:`catlab._winograd.conv2d_winograd`
   (F(2x2, 3x3) and F(4x4, 3x3)) against ``catlab.functional.conv2d`` in
   float64 and reports the float32 error of each contender;
3. times ``F.conv2d``, Winograd m=2, m=4 and torch interleaved
   (:func:`catlab.bench.time_interleaved`) and prints ms, the ratio to torch
   and the share of the matmul peak (counting the direct method's
   ``2*N*K*C*9*P*Q`` flops, so Winograd can exceed 100%).

Timing is never part of the test suite; the tests run :func:`check` on a tiny
workload so this module cannot rot.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from . import _threads
from . import functional as F
from ._io import atomic_write
from ._winograd import conv2d_winograd
from .bench import _torch, matmul_peak, time_interleaved

# (name, N, C, K, H, W); all 3x3, stride 1, padding 1
WORKLOADS = [("VGG 64x32x32 -> 64", N, 64, 64, 32, 32) for N in (64, 1)] + [
    (f"{C}x{H}x{H} -> {C}", N, C, C, H, H)
    for N in (64, 1)
    for C in (16, 32, 64)
    for H in (8, 15, 16, 32)
    if not (C == 64 and H == 32)
]


def make_data(N, C, K, H, W, seed=0, dtype=np.float32):
    """Inputs uniform in [-1, 1), filters scaled by 1/sqrt(9 C), bias in [-1, 1)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (N, C, H, W)).astype(dtype)
    w = (rng.uniform(-1, 1, (K, C, 3, 3)) / np.sqrt(9 * C)).astype(dtype)
    b = rng.uniform(-1, 1, K).astype(dtype)
    return x, w, b


def contenders(x, w, b, torch=None):
    """The callables to time: catlab's conv2d, Winograd m=2 and m=4, and torch (padding 1)."""
    out = {
        "catlab": lambda: F.conv2d(x, w, b, 1, 1),
        "wino2": lambda: conv2d_winograd(x, w, b, 1, m=2),
        "wino4": lambda: conv2d_winograd(x, w, b, 1, m=4),
    }
    if torch is not None:
        xt, wt, bt = (torch.from_numpy(a) for a in (x, w, b))

        def tf():
            with torch.no_grad():
                return torch.nn.functional.conv2d(xt, wt, bt, 1, 1)

        out["torch"] = tf
    return out


def check(x, w, b, torch=None):
    """Max relative error (max |y - y64| / max |y64|) of every contender's float32 output against float64."""
    want = F.conv2d(*(a.astype(np.float64) for a in (x, w, b)), 1, 1)
    scale = np.abs(want).max()
    errs = {}
    for key, fn in contenders(x, w, b, torch).items():
        y = np.asarray(fn())
        if y.shape != want.shape:
            raise AssertionError(f"{key}: shape {y.shape}, expected {want.shape}")
        errs[key] = float(np.abs(y.astype(np.float64) - want).max() / scale)
    return errs


def run(args):
    """Run the benchmark; print the table and return the JSON-ready result."""
    threads = args.threads or _threads.get_num_threads()
    _threads.set_num_threads(threads)
    torch = None if args.no_torch else _torch()
    if torch is not None:
        torch.set_num_threads(threads)
    peak = matmul_peak(threads)
    print(f"threads: {threads}; float32 matmul peak (NumPy 2048^3): {peak:.1f} GFLOP/s")
    head = f"{'3x3 s1 p1 workload':20s} {'N':>3s}"
    names = ["catlab", "wino2", "wino4"] + (["torch"] if torch is not None else [])
    for k in names:
        head += f" {k + ' ms':>10s} {'/torch':>6s} {'%pk':>4s}"
    print(head + "  float32 rel. error (catlab, wino2, wino4)")
    rows = []
    with _threads.blas_limit(threads):
        for name, N, C, K, H, W in WORKLOADS:
            if args.batch and N not in args.batch:
                continue
            x, w, b = make_data(N, C, K, H, W)
            errs = check(x, w, b, torch)
            t = time_interleaved(contenders(x, w, b, torch), args.repeats)
            flops = 2.0 * N * K * C * 9 * H * W
            line = f"{name:20s} {N:3d}"
            rec = {
                "name": name,
                "N": N,
                "C": C,
                "K": K,
                "H": H,
                "W": W,
                "errors": errs,
                "ms": {},
                "ratio_to_torch": {},
                "pct_peak": {},
            }
            for k in names:
                ratio = t[k] / t["torch"] if torch is not None else float("nan")
                pct = 100 * flops / t[k] / 1e9 / peak
                line += f" {1e3 * t[k]:10.3f} {ratio:6.2f} {pct:4.0f}"
                rec["ms"][k], rec["ratio_to_torch"][k], rec["pct_peak"][k] = 1e3 * t[k], ratio, pct
            line += f"  {errs['catlab']:.1e} {errs['wino2']:.1e} {errs['wino4']:.1e}"
            print(line, flush=True)
            rows.append(rec)
    print(
        "\n/torch: time over torch's (lower is better); %pk: direct-method flops per second as a share of the "
        "matmul peak;\nerror: max |y - y_float64| / max |y_float64| for float32 inputs in [-1, 1)."
    )
    return {"threads": threads, "matmul_peak_gflops": peak, "repeats": args.repeats, "workloads": rows}


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m catlab.bench_winograd", description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=0, help="threads for every contender (default: Numba's)")
    ap.add_argument("--repeats", type=int, default=7, help="timing rounds (median reported)")
    ap.add_argument("--batch", type=int, nargs="*", help="only these batch sizes (default: 64 and 1)")
    ap.add_argument("--no-torch", action="store_true", help="skip PyTorch even when installed")
    ap.add_argument("--json", help="write the results to this JSON file")
    args = ap.parse_args(argv)
    result = run(args)
    if args.json:
        with atomic_write(args.json) as f:
            f.write(json.dumps(result, indent=1).encode())
    return result


if __name__ == "__main__":
    main()
