"""Benchmark catlab's layers against NumPy im2col + matmul and PyTorch, side by side.

Run ``python -m catlab.bench`` (``--help`` for the options). In one process,
with the same inputs and the same number of threads for every contender, it

1. measures this machine's float32 matrix-multiply peak (NumPy, 2048^3);
2. for every workload, checks catlab against the NumPy baseline and PyTorch
   (when installed) before timing anything;
3. times each one (median of ``--repeats`` after warm-up) and prints time,
   GFLOP/s, the ratio to torch, the share of the matmul peak, and the extra
   memory one call needs;
4. measures Numba's compile time cold (fresh cache, new process) and the
   time to load the cache in another new process;

and writes everything as JSON with ``--json PATH``.

Timing is never part of the test suite; the tests only run :func:`check_conv`
and :func:`check_ops` on tiny workloads so this module cannot rot.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc

import numpy as np

from . import _threads
from . import functional as F

# (name, N, C, H, W, K, R, S, stride, padding)
CONV_WORKLOADS = [
    ("book 3x32x32 -> 6@5x5", 64, 3, 32, 32, 6, 5, 5, 1, 0),
    ("book 6x28x28 -> 16@5x5", 64, 6, 28, 28, 16, 5, 5, 1, 0),
    ("book 3x32x32 -> 16@5x5 p2", 64, 3, 32, 32, 16, 5, 5, 1, 2),
    ("book 16x16x16 -> 20@5x5 p2", 64, 16, 16, 16, 20, 5, 5, 1, 2),
    ("LeNet c1 1x28x28 -> 6@5x5 p2", 64, 1, 28, 28, 6, 5, 5, 1, 2),
    ("LeNet c2 6x14x14 -> 16@5x5", 64, 6, 14, 14, 16, 5, 5, 1, 0),
    ("VGG 64x32x32 -> 64@3x3 p1", 64, 64, 32, 32, 64, 3, 3, 1, 1),
    ("strided 64x32x32 -> 128@3x3 s2 p1", 64, 64, 32, 32, 128, 3, 3, 2, 1),
]

# (name, kind, shape, extra): pooling (kernel, stride, padding), ReLU, linear (out_features),
# batch norm in training (None), dropout (p), adaptive average pooling (output size)
OP_WORKLOADS = [
    ("maxpool 6x28x28 k2", "max_pool", (64, 6, 28, 28), (2, 2, 0)),
    ("maxpool 16x10x10 k2", "max_pool", (64, 16, 10, 10), (2, 2, 0)),
    ("maxpool 64x32x32 k3 s2 p1", "max_pool", (64, 64, 32, 32), (3, 2, 1)),
    ("avgpool 6x28x28 k2", "avg_pool", (64, 6, 28, 28), (2, 2, 0)),
    ("avgpool 64x32x32 k2", "avg_pool", (64, 64, 32, 32), (2, 2, 0)),
    ("relu 6x28x28", "relu", (64, 6, 28, 28), None),
    ("relu 64x32x32", "relu", (64, 64, 32, 32), None),
    ("linear 400 -> 120", "linear", (64, 400), 120),
    ("linear 120 -> 84", "linear", (64, 120), 84),
    ("linear 4096 -> 1024", "linear", (64, 4096), 1024),
    ("batchnorm 16x28x28", "batch_norm", (64, 16, 28, 28), None),
    ("batchnorm 64x32x32", "batch_norm", (64, 64, 32, 32), None),
    ("dropout 64x32x32 p0.5", "dropout", (64, 64, 32, 32), 0.5),
    ("dropout 4096 p0.5", "dropout", (64, 4096), 0.5),
    ("global avgpool 64x32x32", "adaptive_avg_pool", (64, 64, 32, 32), 1),
    ("global avgpool 512x7x7", "adaptive_avg_pool", (64, 512, 7, 7), 1),
]


def _with_batch(workloads, batch):
    out = []
    for wl in workloads:
        if len(wl) == 10:  # conv
            out.append((wl[0],) + (batch,) + wl[2:])
        else:
            out.append(wl[:2] + ((batch,) + tuple(wl[2][1:]),) + wl[3:])
    return out


# ----------------------------------------------------------------------------
# The classic NumPy baseline: im2col with stride tricks, then one matmul
# ----------------------------------------------------------------------------


def numpy_im2col(x, R, S, stride, padding):
    """(N, C, H, W) -> (N*P*Q, C*R*S) matrix of receptive fields, and (P, Q)."""
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (R, S), axis=(2, 3))  # (N, C, Hp-R+1, Wp-S+1, R, S)
    win = win[:, :, ::stride, ::stride]  # (N, C, P, Q, R, S)
    N, C, P, Q = win.shape[:4]
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(N * P * Q, C * R * S), (P, Q)


def numpy_conv2d(x, w, b, stride, padding):
    """Forward pass by im2col + matmul: y = cols @ w.T + b, back to (N, K, P, Q)."""
    K, C, R, S = w.shape
    cols, (P, Q) = numpy_im2col(x, R, S, stride, padding)
    y = cols @ w.reshape(K, -1).T + b  # (N*P*Q, K)
    return y.reshape(x.shape[0], P, Q, K).transpose(0, 3, 1, 2)


def numpy_conv2d_backward(dy, x, w, stride, padding):
    """Backward pass by im2col: dw = dy.T @ cols, and dx by adding each kernel tap's slice back."""
    N, C, H, W = x.shape
    K, _, R, S = w.shape
    P, Q = dy.shape[2:]
    cols, _ = numpy_im2col(x, R, S, stride, padding)
    dym = dy.transpose(0, 2, 3, 1).reshape(N * P * Q, K)  # (N*P*Q, K)
    dw = (dym.T @ cols).reshape(w.shape)
    dcols = (dym @ w.reshape(K, -1)).reshape(N, P, Q, C, R, S)
    dxp = np.zeros((N, C, H + 2 * padding, W + 2 * padding), dtype=x.dtype)
    for r in range(R):
        for s in range(S):
            dxp[:, :, r:r + stride * P:stride, s:s + stride * Q:stride] += dcols[:, :, :, :, r, s].transpose(0, 3, 1, 2)
    return dxp[:, :, padding:padding + H, padding:padding + W], dw, dy.sum(axis=(0, 2, 3))


# ----------------------------------------------------------------------------
# Contenders: each a dict of name -> (forward thunk, backward thunk)
# ----------------------------------------------------------------------------


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def conv_contenders(x, w, b, dy, stride, padding, torch=None):
    """Forward and backward callables for catlab, numpy and (if given) torch, on the same data."""
    out = {
        "catlab": (lambda: F.conv2d(x, w, b, stride, padding),
                   lambda: F.conv2d_backward(dy, x, w, stride, padding)),
        "numpy": (lambda: numpy_conv2d(x, w, b, stride, padding),
                  lambda: numpy_conv2d_backward(dy, x, w, stride, padding)),
    }
    if torch is not None:
        xt, wt, bt, dyt = (torch.from_numpy(a) for a in (x, w, b, dy))
        K = w.shape[0]

        def tf():
            with torch.no_grad():
                return torch.nn.functional.conv2d(xt, wt, bt, stride, padding)

        def tb():  # the kernel autograd calls, without autograd's bookkeeping
            return torch.ops.aten.convolution_backward(
                dyt, xt, wt, [K], [stride] * 2, [padding] * 2, [1, 1], False, [0, 0], 1, [True, True, True])

        out["torch"] = (tf, tb)
    return out


def op_contenders(kind, x, extra, dy, wlin=None, torch=None):
    """Forward and backward callables for pooling, ReLU or linear."""
    if kind in ("max_pool", "avg_pool"):
        k, s, p = extra
        if kind == "max_pool":  # as torch in training: the forward records the argmax, the backward uses it
            _, ind = F.max_pool2d(x, k, s, p, return_indices=True)
            out = {"catlab": (lambda: F.max_pool2d(x, k, s, p, return_indices=True)[0],
                              lambda: F.max_pool2d_backward(dy, x, k, s, p, indices=ind))}
        else:
            out = {"catlab": (lambda: F.avg_pool2d(x, k, s, p), lambda: F.avg_pool2d_backward(dy, x, k, s, p))}
    elif kind == "relu":
        out = {"catlab": (lambda: F.relu(x), lambda: F.relu_backward(dy, x))}
    elif kind == "batch_norm":  # training mode: batch statistics, running statistics updated
        w, b = wlin
        rm, rv = np.zeros_like(w), np.ones_like(w)
        out = {"catlab": (lambda: F.batch_norm(x, rm, rv, w, b, True, 0.1, 1e-5)[0],
                          lambda: F.batch_norm_backward(dy, x, None, None, w, True, 1e-5))}
    elif kind == "dropout":
        _, mask = F.dropout(x, extra, rng=0, return_mask=True)
        out = {"catlab": (lambda: F.dropout(x, extra, rng=0), lambda: F.dropout_backward(dy, mask, extra))}
    elif kind == "adaptive_avg_pool":
        out = {"catlab": (lambda: F.adaptive_avg_pool2d(x, extra),
                          lambda: F.adaptive_avg_pool2d_backward(dy, x, extra))}
    else:
        wl, bl = wlin
        out = {"catlab": (lambda: F.linear(x, wl, bl), lambda: F.linear_backward(dy, x, wl))}
    if torch is None:
        return out
    tnf = torch.nn.functional
    xt, dyt = torch.from_numpy(x), torch.from_numpy(dy)
    if kind == "max_pool":
        _, idx = torch.ops.aten.max_pool2d_with_indices(xt, [k, k], [s, s], [p, p])

        def tf():  # what torch runs in training: the forward also records each window's argmax
            with torch.no_grad():
                return torch.ops.aten.max_pool2d_with_indices(xt, [k, k], [s, s], [p, p])[0]

        out["torch"] = (tf, lambda: torch.ops.aten.max_pool2d_with_indices_backward(
            dyt, xt, [k, k], [s, s], [p, p], [1, 1], False, idx))
    elif kind == "avg_pool":
        def tf():
            with torch.no_grad():
                return tnf.avg_pool2d(xt, k, s, p)

        out["torch"] = (tf, lambda: torch.ops.aten.avg_pool2d_backward(
            dyt, xt, [k, k], [s, s], [p, p], False, True, None))
    elif kind == "relu":
        def tf():
            with torch.no_grad():
                return torch.relu(xt)

        out["torch"] = (tf, lambda: torch.ops.aten.threshold_backward(dyt, xt, 0))
    elif kind == "batch_norm":
        wt, bt = torch.from_numpy(wlin[0]), torch.from_numpy(wlin[1])
        rmt, rvt = torch.zeros_like(wt), torch.ones_like(wt)
        _, smean, sinv = torch.ops.aten.native_batch_norm(xt, wt, bt, rmt, rvt, True, 0.1, 1e-5)

        def tf():  # the kernel autograd calls: output, saved mean and inverse std; running stats updated
            with torch.no_grad():
                return torch.ops.aten.native_batch_norm(xt, wt, bt, rmt, rvt, True, 0.1, 1e-5)[0]

        out["torch"] = (tf, lambda: torch.ops.aten.native_batch_norm_backward(
            dyt, xt, wt, rmt, rvt, smean, sinv, True, 1e-5, [True, True, True]))
    elif kind == "dropout":
        maskt = torch.from_numpy(F.dropout(x, extra, rng=0, return_mask=True)[1])

        def tf():  # a different random mask than catlab's: only the shape is compared
            with torch.no_grad():
                return torch.ops.aten.native_dropout(xt, extra, True)[0]

        tf.random = True
        out["torch"] = (tf, lambda: torch.ops.aten.native_dropout_backward(dyt, maskt, 1.0 / (1.0 - extra)))
    elif kind == "adaptive_avg_pool":
        def tf():
            with torch.no_grad():
                return tnf.adaptive_avg_pool2d(xt, extra)

        out["torch"] = (tf, lambda: torch.ops.aten._adaptive_avg_pool2d_backward(dyt, xt))
    else:
        wt, bt = torch.from_numpy(wlin[0]), torch.from_numpy(wlin[1])

        def tf():
            with torch.no_grad():
                return tnf.linear(xt, wt, bt)

        out["torch"] = (tf, lambda: (dyt.mm(wt), dyt.t().mm(xt), dyt.sum(0)))
    return out


# ----------------------------------------------------------------------------
# Checks (run before timing, and by the tests on tiny workloads)
# ----------------------------------------------------------------------------


def _as_numpy(a):
    return a.detach().numpy() if hasattr(a, "detach") else np.asarray(a)


def _agree(name, got, want, rtol):
    got, want = _as_numpy(got), _as_numpy(want)
    if got.shape != want.shape:
        raise AssertionError(f"{name}: shape {got.shape} != {want.shape}")
    scale = max(float(np.abs(want).max()), 1e-30)
    err = float(np.abs(got.astype(np.float64) - want).max()) / scale
    if not err <= rtol:
        raise AssertionError(f"{name}: relative error {err:.3g} > {rtol:g}")
    return err


def check_contenders(label, contenders, rtol):
    """Run every contender once, forward and backward, and compare each with catlab's results.

    Returns the largest relative error (max abs difference over max abs value).

    Raises
    ------
    AssertionError
        If a result's shape differs or its error exceeds ``rtol``.
    """
    ref_f, ref_b = (contenders["catlab"][0](), contenders["catlab"][1]())
    ref_b = ref_b if isinstance(ref_b, tuple) else (ref_b,)
    worst = 0.0
    for name, (f, b) in contenders.items():
        if name == "catlab":
            continue
        if getattr(f, "random", False):  # random output (dropout): compare shapes only
            if tuple(_as_numpy(f()).shape) != tuple(np.shape(ref_f)):
                raise AssertionError(f"{label}: {name} forward shape differs")
        else:
            worst = max(worst, _agree(f"{label}: {name} forward", f(), ref_f, rtol))
        got = b()
        got = got if isinstance(got, tuple) else (got,)
        for i, (g, r) in enumerate(zip(got, ref_b)):
            worst = max(worst, _agree(f"{label}: {name} backward output {i}", g, r, rtol))
    return worst


def make_conv_data(N, C, H, W, K, R, S, stride, padding, seed=0, dtype=np.float32):
    """Seeded inputs x (N, C, H, W), weight (K, C, R, S), bias (K,) and dy (N, K, P, Q)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W), dtype=np.float64).astype(dtype)
    w = (rng.standard_normal((K, C, R, S)) / np.sqrt(C * R * S)).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    P = F.conv_output_size(H, R, stride, padding)
    Q = F.conv_output_size(W, S, stride, padding)
    dy = rng.standard_normal((N, K, P, Q)).astype(dtype)
    return x, w, b, dy


def check_conv(workloads, torch=None, rtol=1e-4):
    """Check catlab's conv2d forward and backward against NumPy im2col (and torch) on each workload.

    Parameters
    ----------
    workloads : list of (name, N, C, H, W, K, R, S, stride, padding)
    torch : module, optional
        PyTorch, to compare with it too.
    rtol : float
        Largest accepted max-abs error relative to the largest value.

    Returns
    -------
    list of float
        The worst relative error per workload.

    Raises
    ------
    AssertionError
        If any result disagrees.

    Examples
    --------
    >>> errs = check_conv([("tiny", 2, 3, 7, 6, 4, 3, 3, 2, 1)])
    >>> errs[0] < 1e-5
    True
    """
    errs = []
    for name, N, C, H, W, K, R, S, stride, padding in workloads:
        x, w, b, dy = make_conv_data(N, C, H, W, K, R, S, stride, padding)
        errs.append(check_contenders(name, conv_contenders(x, w, b, dy, stride, padding, torch), rtol))
    return errs


def make_op_data(kind, shape, extra, seed=0, dtype=np.float32):
    """Seeded x, dy and (for linear and batch norm) (weight, bias) for an op workload."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    wlin = None
    if kind in ("max_pool", "avg_pool"):
        k, s, p = extra
        yshape = shape[:2] + (F.conv_output_size(shape[2], k, s, p), F.conv_output_size(shape[3], k, s, p))
    elif kind in ("relu", "dropout"):
        yshape = shape
    elif kind == "batch_norm":
        yshape = shape
        wlin = (rng.uniform(0.5, 1.5, shape[1]).astype(dtype), rng.standard_normal(shape[1]).astype(dtype))
    elif kind == "adaptive_avg_pool":
        yshape = shape[:2] + (extra, extra)
    else:
        wlin = ((rng.standard_normal((extra, shape[1])) / np.sqrt(shape[1])).astype(dtype),
                rng.standard_normal(extra).astype(dtype))
        yshape = (shape[0], extra)
    dy = rng.standard_normal(yshape).astype(dtype)
    return x, dy, wlin


def check_ops(workloads, torch=None, rtol=1e-4):
    """Check pooling, ReLU and linear (forward and backward) against torch; with no torch, run them.

    Examples
    --------
    >>> check_ops([("tiny", "max_pool", (2, 3, 6, 6), (2, 2, 0))]) == [0.0]
    True
    """
    errs = []
    for name, kind, shape, extra in workloads:
        x, dy, wlin = make_op_data(kind, shape, extra)
        errs.append(check_contenders(name, op_contenders(kind, x, extra, dy, wlin, torch), rtol))
    return errs


# ----------------------------------------------------------------------------
# Timing and memory
# ----------------------------------------------------------------------------


def time_call(fn, repeats, min_time=2e-3):
    """Median seconds per call: warm up, then ``repeats`` samples of enough calls to last ``min_time``."""
    return time_interleaved({"f": fn}, repeats, min_time)["f"]


def time_interleaved(fns, repeats, min_time=10e-3):
    """Median seconds per call of each function in ``fns`` (a dict), sampled in turn.

    Each function is warmed up, then every round takes one sample of each
    (enough calls to last ``min_time``), so a change in the machine's load
    hits all of them alike; the median over ``repeats`` rounds is returned.
    """
    number = {}
    for key, fn in fns.items():
        fn()
        t0 = time.perf_counter()
        fn()
        number[key] = max(1, int(min_time / max(time.perf_counter() - t0, 1e-7)))
    samples = {key: [] for key in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            n = number[key]
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            samples[key].append((time.perf_counter() - t0) / n)
    return {key: statistics.median(v) for key, v in samples.items()}


def _rss_hwm():
    """(current RSS, peak RSS) in bytes from /proc, after resetting the peak; None where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak resident set size to the current one
        with open("/proc/self/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        return int(fields["VmRSS"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None


def _rss_peak():
    with open("/proc/self/status") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return int(fields["VmHWM"].split()[0]) * 1024


def extra_memory(fn):
    """Extra memory of one call, in bytes: (tracemalloc peak, resident-set peak minus before).

    tracemalloc sees NumPy's and torch's allocations made from Python (outputs
    included) but not Numba's or BLAS's internal ones; the resident-set figure
    sees all of them but not memory reused from earlier calls. Both are lower bounds.
    """
    before = _rss_hwm()
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = None if before is None else max(0, _rss_peak() - before)
    return peak, rss


def matmul_peak(threads, n=2048, repeats=5):
    """This machine's float32 matrix-multiply rate (GFLOP/s) with NumPy's BLAS on ``threads`` threads."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty((n, n), dtype=np.float32)
    with _threads.blas_limit(threads):
        t = time_call(lambda: np.matmul(a, b, out=c), repeats, min_time=0)
    return 2.0 * n ** 3 / t / 1e9


# ----------------------------------------------------------------------------
# Compile and start-up times (new processes)
# ----------------------------------------------------------------------------

_LENET_SCRIPT = r"""
import json, time
t0 = time.perf_counter()
import numpy as np
import catlab
from catlab import functional as F
t1 = time.perf_counter()
x = np.random.default_rng(0).random((2, 1, 28, 28), dtype=np.float32)
w = np.full((6, 1, 5, 5), 0.1, np.float32); b = np.zeros(6, np.float32)
y = F.conv2d(x, w, b, padding=2)
dx, dw, db = F.conv2d_backward(np.ones_like(y), x, w, padding=2)
t2 = time.perf_counter()
h = F.relu(y); F.relu_backward(h, y)
p, pi = F.max_pool2d(h, 2, return_indices=True); F.max_pool2d_backward(p, h, 2, indices=pi)
w2 = np.full((16, 6, 5, 5), 0.1, np.float32)
y2 = F.conv2d(p, w2, np.zeros(16, np.float32)); F.conv2d_backward(y2, p, w2)
a = F.avg_pool2d(y2, 2); F.avg_pool2d_backward(a, y2, 2)
z = a.reshape(2, -1); wl = np.full((10, z.shape[1]), 0.01, np.float32)
o = F.linear(z, wl, np.zeros(10, np.float32)); F.linear_backward(o, z, wl)
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "conv_fwd_bwd": t2 - t1, "rest_of_lenet": t3 - t2, "total": t3 - t0}))
"""


def compile_times(threads):
    """Seconds for a new process to import catlab and run a LeNet forward + backward (float32).

    Run twice with one fresh ``NUMBA_CACHE_DIR``: the first run compiles every
    kernel it needs (cold), the second loads them from the cache (warm).
    """
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, CATLAB_NUM_THREADS=str(threads))
        for label in ("cold", "warm"):
            res = subprocess.run([sys.executable, "-c", _LENET_SCRIPT], env=env, capture_output=True, text=True,
                                 check=True)
            out[label] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


# ----------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------


def _fmt_mem(b):
    return "-" if b is None else f"{b / 2**20:.1f}"


def run(args):
    """Run the whole benchmark; return the JSON-ready result and print the tables."""
    import numba

    threads = args.threads or _threads.get_num_threads()
    _threads.set_num_threads(threads)
    torch = None if args.no_torch else _torch()
    if torch is not None:
        torch.set_num_threads(threads)
    peak = matmul_peak(threads, n=args.matmul_size)
    print(f"catlab benchmark: {threads} thread(s), float32, median of {args.repeats} after warm-up; "
          f"torch {'not used' if torch is None else torch.__version__}")
    print(f"float32 matmul peak (NumPy {args.matmul_size}^3): {peak:.1f} GFLOP/s\n")
    result = {"threads": threads, "matmul_peak_gflops": peak, "repeats": args.repeats,
              "numpy": np.__version__, "numba": numba.__version__,
              "torch": None if torch is None else torch.__version__, "conv": [], "ops": []}

    batches = [64, 1] if not args.quick else [64]
    convs = [wl for b in batches for wl in _with_batch(CONV_WORKLOADS, b)]
    ops = [wl for b in batches for wl in _with_batch(OP_WORKLOADS, b)]
    if args.quick:
        convs = [c for c in convs if c[0].startswith(("LeNet", "VGG"))]
        ops = ops[::3]
    if args.only:
        convs = [c for c in convs if args.only in c[0]]
        ops = [o for o in ops if args.only in o[0]]
    if args.batch:
        convs = [c for c in convs if c[1] == args.batch]
        ops = [o for o in ops if o[2][0] == args.batch]

    head = (f"{'conv2d workload':36s} {'N':>3s} {'pass':4s} {'catlab ms':>9s} {'GFLOP/s':>7s} {'%peak':>5s} "
            f"{'numpy ms':>8s} {'torch ms':>8s} {'x torch':>7s} {'mem MiB':>11s}")
    print(head)
    print("-" * len(head))
    for name, N, C, H, W, K, R, S, stride, padding in convs:
        x, w, b, dy = make_conv_data(N, C, H, W, K, R, S, stride, padding)
        cont = conv_contenders(x, w, b, dy, stride, padding, torch)
        err = check_contenders(name, cont, args.rtol)
        P, Q = dy.shape[2:]
        flops = 2.0 * N * K * C * R * S * P * Q
        rec = {"name": name, "N": N, "C": C, "H": H, "W": W, "K": K, "R": R, "S": S, "stride": stride,
               "padding": padding, "flops_forward": flops, "max_rel_err": err}
        with _threads.blas_limit(threads):
            tf = time_interleaved({who: fb[0] for who, fb in cont.items()}, args.repeats)
            tb = time_interleaved({who: fb[1] for who, fb in cont.items()}, args.repeats)
        for who in cont:
            rec[who] = {"forward_s": tf[who], "backward_s": tb[who]}
        mem = extra_memory(lambda: (cont["catlab"][0](), cont["catlab"][1]()))
        rec["catlab"]["mem_tracemalloc_bytes"], rec["catlab"]["mem_rss_bytes"] = mem
        result["conv"].append(rec)
        for phase, fl in (("forward", flops), ("backward", 2 * flops)):
            c = rec["catlab"][f"{phase}_s"]
            ratio = rec["torch"][f"{phase}_s"] / c if "torch" in rec else None
            rec["catlab"][f"{phase}_gflops"] = fl / c / 1e9
            rec["catlab"][f"{phase}_pct_peak"] = 100 * fl / c / 1e9 / peak
            rec[f"{phase}_x_torch"] = None if ratio is None else 1 / ratio
        tot = rec["catlab"]["forward_s"] + rec["catlab"]["backward_s"]
        if "torch" in rec:
            rec["fwd_bwd_x_torch"] = tot / (rec["torch"]["forward_s"] + rec["torch"]["backward_s"])
        for phase in ("forward", "backward", "fwd+bwd"):
            if phase == "fwd+bwd":
                c, nm = tot, rec["numpy"]["forward_s"] + rec["numpy"]["backward_s"]
                tt = None if "torch" not in rec else rec["torch"]["forward_s"] + rec["torch"]["backward_s"]
                gf = 3 * flops / c / 1e9
            else:
                c, nm = rec["catlab"][f"{phase}_s"], rec["numpy"][f"{phase}_s"]
                tt = rec["torch"][f"{phase}_s"] if "torch" in rec else None
                gf = rec["catlab"][f"{phase}_gflops"]
            label = f"{name} {phase}"
            print(f"{label:36s} {N:3d} {'ok':4s} {1e3 * c:9.3f} {gf:7.1f} {100 * gf / peak:5.1f} "
                  f"{1e3 * nm:8.3f} {'-' if tt is None else f'{1e3 * tt:8.3f}':>8s} "
                  f"{'-' if tt is None else f'{c / tt:7.2f}':>7s} "
                  f"{(_fmt_mem(mem[0]) + '/' + _fmt_mem(mem[1])) if phase == 'fwd+bwd' else '':>11s}")

    head = (f"\n{'layer workload':36s} {'N':>3s} {'pass':4s} {'fwd ms':>9s} {'bwd ms':>9s} "
            f"{'torch fwd':>9s} {'torch bwd':>9s} {'x torch':>7s} {'fwd x':>6s} {'bwd x':>6s}")
    print(head)
    print("-" * (len(head) - 1))
    for name, kind, shape, extra in ops:
        x, dy, wlin = make_op_data(kind, shape, extra)
        cont = op_contenders(kind, x, extra, dy, wlin, torch)
        err = check_contenders(name, cont, args.rtol)
        rec = {"name": name, "kind": kind, "shape": list(shape), "extra": extra, "max_rel_err": err}
        with _threads.blas_limit(threads):
            tf = time_interleaved({who: fb[0] for who, fb in cont.items()}, args.repeats)
            tb = time_interleaved({who: fb[1] for who, fb in cont.items()}, args.repeats)
        for who in cont:
            rec[who] = {"forward_s": tf[who], "backward_s": tb[who]}
        c = rec["catlab"]
        line = f"{name:36s} {shape[0]:3d} {'ok':4s} {1e3 * c['forward_s']:9.3f} {1e3 * c['backward_s']:9.3f} "
        if "torch" in rec:
            t = rec["torch"]
            rec["fwd_bwd_x_torch"] = (c["forward_s"] + c["backward_s"]) / (t["forward_s"] + t["backward_s"])
            line += (f"{1e3 * t['forward_s']:9.3f} {1e3 * t['backward_s']:9.3f} {rec['fwd_bwd_x_torch']:7.2f} "
                     f"{c['forward_s'] / t['forward_s']:6.2f} {c['backward_s'] / t['backward_s']:6.2f}")
        print(line)
        result["ops"].append(rec)

    if not args.no_compile_times:
        ct = compile_times(threads)
        result["compile"] = ct
        print("\nNew process, fresh Numba cache (cold) then the same cache again (warm), in seconds:")
        for label in ("cold", "warm"):
            d = ct[label]
            print(f"  {label}: import catlab {d['import']:.2f}, first conv2d forward+backward {d['conv_fwd_bwd']:.2f}, "
                  f"rest of LeNet forward+backward {d['rest_of_lenet']:.2f}, total {d['total']:.2f}")
    print("\nx torch: catlab's time / torch's time at equal threads (below 1 means catlab is faster); "
          "%peak: share of the matmul peak above;\nmem: extra memory of one forward+backward call, "
          "tracemalloc peak (NumPy arrays: outputs, per-chunk sums) / resident-set peak increase "
          "(also Numba workspaces, but not memory reused from earlier calls).")
    return result


def main(argv=None):
    """Command-line entry point: ``python -m catlab.bench [--quick] [--threads T] [--repeats R] [--json PATH]``."""
    ap = argparse.ArgumentParser(prog="python -m catlab.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="batch 64 only, a few workloads, no compile times")
    ap.add_argument("--threads", type=int, default=0, help="threads for catlab, torch and NumPy (default: all)")
    ap.add_argument("--repeats", type=int, default=7, help="timed samples per measurement (median reported)")
    ap.add_argument("--matmul-size", type=int, default=2048, help="n of the n^3 float32 matmul peak measurement")
    ap.add_argument("--rtol", type=float, default=1e-4, help="accepted relative error between contenders")
    ap.add_argument("--no-torch", action="store_true", help="do not compare with PyTorch even if installed")
    ap.add_argument("--no-compile-times", action="store_true", help="skip the cold/warm compile measurement")
    ap.add_argument("--only", metavar="TEXT", help="only the workloads whose name contains TEXT")
    ap.add_argument("--batch", type=int, choices=(1, 64), help="only this batch size")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    args = ap.parse_args(argv)
    if args.quick:
        args.no_compile_times = True
    result = run(args)
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(result, f, indent=1)
        os.replace(tmp, args.json)
        print(f"JSON written to {args.json}")
    return result


if __name__ == "__main__":
    main()
