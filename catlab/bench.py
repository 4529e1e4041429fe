"""Benchmark catlab's layers against NumPy im2col + matmul and PyTorch, side by side.

Run ``python -m catlab.bench`` (``--help`` for the options). In one process,
with the same inputs and the same number of threads for every contender, it

1. measures this machine's float32 matrix-multiply peak (NumPy, 2048^3);
2. for every workload, checks catlab against the NumPy baseline and PyTorch
   (when installed) before timing anything;
3. times each one (median of ``--repeats`` after warm-up; catlab and torch
   interleaved round by round, each sample preceded by untimed calls of the
   same library so that the other's spinning worker threads have gone quiet;
   the NumPy baseline in a separate pass, see :func:`time_interleaved`) and prints time,
   GFLOP/s, the ratio to torch (forward alone, backward, and both; the median
   of the ratios of each round, :func:`paired_ratio`), the share
   of the matmul peak, and the extra memory one call needs: first on the
   shapes the conv paths were tuned on (:data:`CONV_WORKLOADS`), then on
   shapes they were not (:data:`UNTUNED_CONV_WORKLOADS`: odd sizes, 16-64
   channels, stride 2, ``'same'``, 1x1 and 7x7 kernels), each at batch 64 and 1,
   then pooling, ReLU, linear, batch norm, dropout and global pooling;
4. measures the fixed cost of one functional call on a 1x1x4x4 input
   (validation, allocation, dispatch) against torch's, in microseconds;
5. measures the peak memory of VGG's 64->64 3x3 conv forward + backward at
   batch 64 for catlab and torch alike, each in a fresh process
   (:func:`peak_memory`);
6. measures Numba's compile time cold (fresh cache, new process) and the
   time to load the cache in another new process;

Every table lines up whatever the workload names, and a value that was not
measured (torch absent) prints as ``-``. ``--quick`` keeps a subset,
``--only TEXT`` the workloads and small calls whose name contains ``TEXT``;
``--json PATH`` also writes everything as JSON.

Timing is never part of the test suite; the tests run the checks on tiny
workloads, render the tables from made-up results and measure the memory of
one small call, so this module cannot rot.
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

# Shapes the conv paths were never tuned on (issue 12: odd sizes, 16-64 channels at
# 8x8-32x32, stride 2, padding 'same', 1x1 and 7x7 kernels), same tuple layout;
# padding may be the string 'same' (catlab gets 'same', NumPy and torch the number).
UNTUNED_CONV_WORKLOADS = [
    ("odd 16x15x15 -> 32@3x3 p1", 64, 16, 15, 15, 32, 3, 3, 1, 1),
    ("odd 32x27x27 -> 32@3x3 p1", 64, 32, 27, 27, 32, 3, 3, 1, 1),
    ("odd 3x27x27 -> 16@5x5", 64, 3, 27, 27, 16, 5, 5, 1, 0),
    ("ch 16x8x8 -> 16@3x3 p1", 64, 16, 8, 8, 16, 3, 3, 1, 1),
    ("ch 64x8x8 -> 64@3x3 p1", 64, 64, 8, 8, 64, 3, 3, 1, 1),
    ("ch 32x16x16 -> 64@3x3 p1", 64, 32, 16, 16, 64, 3, 3, 1, 1),
    ("ch 16x32x32 -> 32@3x3 p1", 64, 16, 32, 32, 32, 3, 3, 1, 1),
    ("s2 32x16x16 -> 64@3x3 s2 p1", 64, 32, 16, 16, 64, 3, 3, 2, 1),
    ("s2 16x31x31 -> 32@5x5 s2 p2", 64, 16, 31, 31, 32, 5, 5, 2, 2),
    ("same 32x16x16 -> 32@3x3 same", 64, 32, 16, 16, 32, 3, 3, 1, "same"),
    ("same 16x27x27 -> 16@5x5 same", 64, 16, 27, 27, 16, 5, 5, 1, "same"),
    ("1x1 64x16x16 -> 32@1x1", 64, 64, 16, 16, 32, 1, 1, 1, 0),
    ("1x1 32x32x32 -> 64@1x1", 64, 32, 32, 32, 64, 1, 1, 1, 0),
    ("7x7 3x32x32 -> 16@7x7 s2 p3", 64, 3, 32, 32, 16, 7, 7, 2, 3),
    ("7x7 16x16x16 -> 16@7x7 same", 64, 16, 16, 16, 16, 7, 7, 1, "same"),
]

#: The untuned shapes ``--quick`` keeps (at batch 64 and 1).
QUICK_UNTUNED = (
    "odd 16x15x15 -> 32@3x3 p1",
    "same 32x16x16 -> 32@3x3 same",
    "1x1 64x16x16 -> 32@1x1",
    "7x7 3x32x32 -> 16@7x7 s2 p3",
)

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
            dxp[:, :, r : r + stride * P : stride, s : s + stride * Q : stride] += dcols[:, :, :, :, r, s].transpose(
                0, 3, 1, 2
            )
    return dxp[:, :, padding : padding + H, padding : padding + W], dw, dy.sum(axis=(0, 2, 3))


# ----------------------------------------------------------------------------
# Contenders: each a dict of name -> (forward thunk, backward thunk)
# ----------------------------------------------------------------------------


def numeric_padding(padding, R):
    """``padding`` as a number: ``'same'`` (stride 1, odd square kernel) is ``(R - 1) // 2`` per side."""
    if padding == "same":
        if R % 2 == 0:
            raise ValueError(f"padding='same' needs an odd kernel size here, got {R}")
        return (R - 1) // 2
    return padding


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def conv_contenders(x, w, b, dy, stride, padding, torch=None):
    """Forward and backward callables for catlab, numpy and (if given) torch, on the same data.

    ``padding`` may be ``'same'``: catlab gets the string, NumPy and torch the number.
    """
    cpad, padding = padding, numeric_padding(padding, w.shape[2])
    out = {
        "catlab": (lambda: F.conv2d(x, w, b, stride, cpad), lambda: F.conv2d_backward(dy, x, w, stride, cpad)),
        "numpy": (
            lambda: numpy_conv2d(x, w, b, stride, padding),
            lambda: numpy_conv2d_backward(dy, x, w, stride, padding),
        ),
    }
    if torch is not None:
        xt, wt, bt, dyt = (torch.from_numpy(a) for a in (x, w, b, dy))
        K = w.shape[0]

        def tf():
            with torch.no_grad():
                return torch.nn.functional.conv2d(xt, wt, bt, stride, padding)

        def tb():  # the kernel autograd calls, without autograd's bookkeeping
            return torch.ops.aten.convolution_backward(
                dyt, xt, wt, [K], [stride] * 2, [padding] * 2, [1, 1], False, [0, 0], 1, [True, True, True]
            )

        out["torch"] = (tf, tb)
    return out


def op_contenders(kind, x, extra, dy, wlin=None, torch=None):
    """Forward and backward callables for pooling, ReLU or linear."""
    if kind in ("max_pool", "avg_pool"):
        k, s, p = extra
        if kind == "max_pool":  # as torch in training: the forward records the argmax, the backward uses it
            _, ind = F.max_pool2d(x, k, s, p, return_indices=True)
            out = {
                "catlab": (
                    lambda: F.max_pool2d(x, k, s, p, return_indices=True)[0],
                    lambda: F.max_pool2d_backward(dy, x, k, s, p, indices=ind),
                )
            }
        else:
            out = {"catlab": (lambda: F.avg_pool2d(x, k, s, p), lambda: F.avg_pool2d_backward(dy, x, k, s, p))}
    elif kind == "relu":
        out = {"catlab": (lambda: F.relu(x), lambda: F.relu_backward(dy, x))}
    elif kind == "batch_norm":  # training mode: batch statistics, running statistics updated
        w, b = wlin
        rm, rv = np.zeros_like(w), np.ones_like(w)
        out = {
            "catlab": (
                lambda: F.batch_norm(x, rm, rv, w, b, True, 0.1, 1e-5)[0],
                lambda: F.batch_norm_backward(dy, x, None, None, w, True, 1e-5),
            )
        }
    elif kind == "dropout":
        _, mask = F.dropout(x, extra, rng=0, return_mask=True)
        out = {"catlab": (lambda: F.dropout(x, extra, rng=0), lambda: F.dropout_backward(dy, mask, extra))}
    elif kind == "adaptive_avg_pool":
        out = {
            "catlab": (lambda: F.adaptive_avg_pool2d(x, extra), lambda: F.adaptive_avg_pool2d_backward(dy, x, extra))
        }
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

        out["torch"] = (
            tf,
            lambda: torch.ops.aten.max_pool2d_with_indices_backward(
                dyt, xt, [k, k], [s, s], [p, p], [1, 1], False, idx
            ),
        )
    elif kind == "avg_pool":

        def tf():
            with torch.no_grad():
                return tnf.avg_pool2d(xt, k, s, p)

        out["torch"] = (
            tf,
            lambda: torch.ops.aten.avg_pool2d_backward(dyt, xt, [k, k], [s, s], [p, p], False, True, None),
        )
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

        out["torch"] = (
            tf,
            lambda: torch.ops.aten.native_batch_norm_backward(
                dyt, xt, wt, rmt, rvt, smean, sinv, True, 1e-5, [True, True, True]
            ),
        )
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
    P = F.conv_output_size(H, R, stride, numeric_padding(padding, R))
    Q = F.conv_output_size(W, S, stride, numeric_padding(padding, S))
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
        wlin = (
            (rng.standard_normal((extra, shape[1])) / np.sqrt(shape[1])).astype(dtype),
            rng.standard_normal(extra).astype(dtype),
        )
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
    """Median seconds per call of each function in ``fns`` (a dict), sampled in turn (:func:`time_rounds`)."""
    return {key: statistics.median(v) for key, v in time_rounds(fns, repeats, min_time).items()}


def time_rounds(fns, repeats, min_time=10e-3):
    """Seconds per call of each function in ``fns`` (a dict) in each of ``repeats`` rounds: key -> list.

    Each function is warmed up, then every round takes one sample of each
    (enough calls to last ``min_time``), so a change in the machine's load
    hits all of them alike (:func:`paired_ratio` compares them round by round).
    Before each sample the function runs untimed for another ``min_time / 2``
    (at least one call): the previous contender's worker threads (OpenMP's and
    OpenBLAS's busy-wait for some milliseconds after their last task) would
    otherwise slow its first calls, and its own threads must wake up.
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
            for _ in range(max(1, n // 2)):  # settle (see above), untimed
                fn()
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            samples[key].append((time.perf_counter() - t0) / n)
    return samples


def paired_ratio(a, b):
    """Median over rounds of ``a[i] / b[i]``: two contenders' times compared within each round.

    A shared machine's load changes over seconds; both samples of one round see about the same load,
    so the ratio of each round is steadier than the ratio of the two medians (which may come from
    different rounds). ``a`` and ``b`` are per-round times (or sums of them), of equal length.

    Examples
    --------
    >>> paired_ratio([1.0, 2.0, 4.0], [2.0, 4.0, 4.0])  # rounds 2 and 3 ran under more load
    0.5
    """
    if len(a) != len(b) or not a:
        raise ValueError(f"paired_ratio needs two equally long non-empty lists, got {len(a)} and {len(b)}")
    return statistics.median(x / y for x, y in zip(a, b))


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
    return 2.0 * n**3 / t / 1e9


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
        env = dict(_child_env(threads), NUMBA_CACHE_DIR=cache)
        for label in ("cold", "warm"):
            res = subprocess.run(
                [sys.executable, "-c", _LENET_SCRIPT], env=env, capture_output=True, text=True, check=True
            )
            out[label] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


# ----------------------------------------------------------------------------
# The fixed cost of one small call (validation, allocation, dispatch)
# ----------------------------------------------------------------------------

#: Shape of the tiny input of :func:`overhead_contenders`.
TINY_SHAPE = (1, 1, 4, 4)


def overhead_contenders(torch=None):
    """Name -> {"catlab": thunk, "torch": thunk} for functional calls on a (1, 1, 4, 4) input.

    On an input this small the arithmetic is a few dozen operations, so the
    time per call is the fixed cost: argument checks, output allocation and
    dispatch to the compiled kernel (torch: its dispatcher). torch tensors do
    not require gradients, so autograd records nothing.
    """
    rng = np.random.default_rng(0)
    x = rng.standard_normal(TINY_SHAPE).astype(np.float32)
    w = rng.standard_normal((1, 1, 3, 3)).astype(np.float32)
    b = rng.standard_normal(1).astype(np.float32)
    dy4 = rng.standard_normal(TINY_SHAPE).astype(np.float32)
    dy2 = rng.standard_normal((1, 1, 2, 2)).astype(np.float32)
    xl, wl, bl = x.reshape(1, 16), rng.standard_normal((4, 16)).astype(np.float32), b.repeat(4)
    _, ind = F.max_pool2d(x, 2, return_indices=True)
    out = {
        "relu": {"catlab": lambda: F.relu(x)},
        "relu_backward": {"catlab": lambda: F.relu_backward(dy4, x)},
        "conv2d 3x3 p1": {"catlab": lambda: F.conv2d(x, w, b, 1, 1)},
        "conv2d_backward 3x3 p1": {"catlab": lambda: F.conv2d_backward(dy4, x, w, 1, 1)},
        "max_pool2d k2": {"catlab": lambda: F.max_pool2d(x, 2)},
        "max_pool2d k2 return_indices": {"catlab": lambda: F.max_pool2d(x, 2, return_indices=True)},
        "max_pool2d_backward k2": {"catlab": lambda: F.max_pool2d_backward(dy2, x, 2, indices=ind)},
        "avg_pool2d k2": {"catlab": lambda: F.avg_pool2d(x, 2)},
        "linear 16 -> 4": {"catlab": lambda: F.linear(xl, wl, bl)},
    }
    if torch is not None:
        tnf, aten = torch.nn.functional, torch.ops.aten
        xt, wt, bt, dy4t, dy2t = (torch.from_numpy(a) for a in (x, w, b, dy4, dy2))
        xlt, wlt, blt = (torch.from_numpy(a) for a in (xl, wl, bl))
        indt = aten.max_pool2d_with_indices(xt, [2, 2], [2, 2])[1]
        out["relu"]["torch"] = lambda: torch.relu(xt)
        out["relu_backward"]["torch"] = lambda: aten.threshold_backward(dy4t, xt, 0)
        out["conv2d 3x3 p1"]["torch"] = lambda: tnf.conv2d(xt, wt, bt, 1, 1)
        out["conv2d_backward 3x3 p1"]["torch"] = lambda: aten.convolution_backward(
            dy4t, xt, wt, [1], [1, 1], [1, 1], [1, 1], False, [0, 0], 1, [True, True, True]
        )
        out["max_pool2d k2"]["torch"] = lambda: tnf.max_pool2d(xt, 2)
        out["max_pool2d k2 return_indices"]["torch"] = lambda: aten.max_pool2d_with_indices(xt, [2, 2], [2, 2])
        out["max_pool2d_backward k2"]["torch"] = lambda: aten.max_pool2d_with_indices_backward(
            dy2t, xt, [2, 2], [2, 2], [0, 0], [1, 1], False, indt
        )
        out["avg_pool2d k2"]["torch"] = lambda: tnf.avg_pool2d(xt, 2)
        out["linear 16 -> 4"]["torch"] = lambda: tnf.linear(xlt, wlt, blt)
    return out


def check_overhead(contenders, rtol=1e-4):
    """Check each small call against torch's (every output); return the worst relative error."""
    worst = 0.0
    for name, fns in contenders.items():
        if "torch" not in fns:
            fns["catlab"]()
            continue
        got, want = fns["catlab"](), fns["torch"]()
        got = got if isinstance(got, tuple) else (got,)
        want = want if isinstance(want, tuple) else (want,)
        for i, (g, t) in enumerate(zip(got, want)):
            if "indices" in name and i == 1:  # catlab's indices are per plane like torch's
                if not np.array_equal(_as_numpy(g), _as_numpy(t)):
                    raise AssertionError(f"{name}: indices differ from torch's")
                continue
            worst = max(worst, _agree(f"{name} output {i}", g, t, rtol))
    return worst


# ----------------------------------------------------------------------------
# Peak memory of one conv forward + backward, catlab and torch measured alike
# ----------------------------------------------------------------------------

#: The workload of the memory comparison (issue 12): VGG's 64->64 3x3 conv at batch 64.
MEMORY_WORKLOAD = ("VGG 64x32x32 -> 64@3x3 p1", 64, 64, 32, 32, 64, 3, 3, 1, 1)

_MEMORY_SCRIPT = r"""
import gc, json, sys
import numpy as np
lib, N, C, H, W, K, R, S, stride, padding, threads = json.loads(sys.argv[1])

def status():
    with open("/proc/self/status") as f:
        d = dict(line.split(":", 1) for line in f if ":" in line)
    return int(d["VmRSS"].split()[0]) * 1024, int(d["VmHWM"].split()[0]) * 1024

rng = np.random.default_rng(0)
P, Q = (H + 2 * padding - R) // stride + 1, (W + 2 * padding - S) // stride + 1
x = rng.standard_normal((N, C, H, W), dtype=np.float32)
w = rng.standard_normal((K, C, R, S), dtype=np.float32) / np.float32(np.sqrt(C * R * S))
b = rng.standard_normal(K, dtype=np.float32)
dy = rng.standard_normal((N, K, P, Q), dtype=np.float32)
if lib == "catlab":
    import catlab
    from catlab import functional as F
    catlab.set_num_threads(threads)

    def step():
        y = F.conv2d(x, w, b, stride, padding)
        return y, F.conv2d_backward(dy, x, w, stride, padding)
else:
    import torch
    torch.set_num_threads(threads)
    xt, wt, bt, dyt = (torch.from_numpy(a) for a in (x, w, b, dy))

    def step():  # the kernels autograd runs, as in catlab.bench's timings
        y = torch.nn.functional.conv2d(xt, wt, bt, stride, padding)
        return y, torch.ops.aten.convolution_backward(
            dyt, xt, wt, [K], [stride] * 2, [padding] * 2, [1, 1], False, [0, 0], 1, [True] * 3)
step()  # warm-up: kernels compiled or loaded, thread pools started
gc.collect()
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the resident-set high-water mark to the current size
before = status()[0]
out = step()
peak = status()[1]
print(json.dumps({"peak_extra_bytes": peak - before, "rss_before_bytes": before}))
"""

#: glibc settings for the memory subprocesses: every block of 64 KiB or more is its own
#: mapping, returned to the OS when freed, so the measured call cannot reuse (and hide)
#: memory the warm-up call freed, and both libraries' allocations are seen the same way.
MEMORY_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "131072"}


def _child_env(threads):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the directory holding catlab/
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, PYTHONPATH=path, CATLAB_NUM_THREADS=str(threads))


def peak_memory(workload, threads, libs=("catlab", "torch")):
    """Extra resident memory at the peak of one conv forward + backward, per library, in bytes.

    Each library runs in a fresh process (:data:`MEMORY_ENV` set): inputs made,
    one warm-up call, the resident-set high-water mark reset
    (``/proc/self/clear_refs``), one measured call; the figure is the high-water
    mark minus the resident size just before that call. It counts everything
    the call touches (outputs, workspaces, BLAS buffers) whoever allocates it,
    to within a few hundred KiB (Linux updates the resident-set counters in
    batches). Linux only; returns ``{lib: None}`` where it cannot be measured.
    """
    _, N, C, H, W, K, R, S, stride, padding = workload
    out = {}
    for lib in libs:
        arg = json.dumps([lib, N, C, H, W, K, R, S, stride, numeric_padding(padding, R), threads])
        env = dict(_child_env(threads), **MEMORY_ENV)
        res = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, arg], env=env, capture_output=True, text=True)
        try:
            out[lib] = json.loads(res.stdout.strip().splitlines()[-1])["peak_extra_bytes"]
        except (IndexError, ValueError, KeyError):
            out[lib] = None
    return out


# ----------------------------------------------------------------------------
# Tables: every row's columns line up under the header, a missing value is "-"
# ----------------------------------------------------------------------------


def render_table(columns, rows, sep="  "):
    r"""Lines of a fixed-width text table.

    Parameters
    ----------
    columns : list of (header, align)
        ``align`` is ``"<"`` (text) or ``">"`` (numbers).
    rows : list of sequences
        One cell per column: a string, or ``None`` for a missing value (printed as ``"-"``).

    Returns
    -------
    list of str
        Header, a rule, then one line per row; each column is as wide as its widest cell.

    Examples
    --------
    >>> print("\n".join(render_table([("name", "<"), ("ms", ">")], [["a", "1.5"], ["long name", None]])))
    name        ms
    --------------
    a          1.5
    long name    -
    """
    cells = [[h for h, _ in columns]] + [["-" if c is None or c == "" else str(c) for c in r] for r in rows]
    if any(len(r) != len(columns) for r in cells):
        raise ValueError(f"rows must have {len(columns)} cells, got lengths {sorted({len(r) for r in cells})}")
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = [sep.join(f"{c:{a}{w}}" for c, (_, a), w in zip(r, columns, widths)) for r in cells]
    return lines[:1] + ["-" * len(lines[0])] + lines[1:]


def _f(v, spec):
    return None if v is None else format(v, spec)


def _mib(b):
    return None if b is None else b / 2**20


CONV_COLUMNS = [
    ("conv2d workload", "<"),
    ("N", ">"),
    ("phase", "<"),
    ("catlab ms", ">"),
    ("GFLOP/s", ">"),
    ("%peak", ">"),
    ("numpy ms", ">"),
    ("torch ms", ">"),
    ("x torch", ">"),
    ("mem MiB", ">"),
]


def _paired(rec, key, of_medians):
    """The record's round-by-round ratio ``key`` (:func:`paired_ratio`), else the ratio of the medians."""
    x = rec.get(key)
    return of_medians if x is None else x


def conv_rows(records, peak):
    """Three rows per conv record (forward, backward, fwd+bwd) for :data:`CONV_COLUMNS`."""
    rows = []
    for rec in records:
        torch = rec.get("torch")
        for phase, keys, mult, xkey in (
            ("forward", ("forward_s",), 1, "forward_x_torch"),
            ("backward", ("backward_s",), 2, "backward_x_torch"),
            ("fwd+bwd", ("forward_s", "backward_s"), 3, "fwd_bwd_x_torch"),
        ):
            c = sum(rec["catlab"][k] for k in keys)
            nm = sum(rec["numpy"][k] for k in keys) if "numpy" in rec else None
            tt = sum(torch[k] for k in keys) if torch else None
            gf = mult * rec["flops_forward"] / c / 1e9
            mem = rec["catlab"].get(f"mem_{phase}")  # (tracemalloc, rss) bytes
            mem_s = None if mem is None else f"{_f(_mib(mem[0]), '.1f') or '-'}/{_f(_mib(mem[1]), '.1f') or '-'}"
            rows.append(
                [
                    rec["name"],
                    str(rec["N"]),
                    phase,
                    f"{1e3 * c:.3f}",
                    f"{gf:.1f}",
                    f"{100 * gf / peak:.1f}",
                    _f(None if nm is None else 1e3 * nm, ".3f"),
                    _f(None if tt is None else 1e3 * tt, ".3f"),
                    _f(None if tt is None else _paired(rec, xkey, c / tt), ".2f"),
                    mem_s,
                ]
            )
    return rows


def conv_summary(records, limit=1.0):
    r"""One line per phase: on how many workloads catlab is slower than ``limit`` x torch, and the worst.

    Examples
    --------
    >>> recs = [{"name": "a", "N": 64, "forward_x_torch": 0.8, "fwd_bwd_x_torch": 1.3},
    ...         {"name": "b", "N": 1, "forward_x_torch": 1.5, "fwd_bwd_x_torch": 0.9}]
    >>> print("\n".join(conv_summary(recs)))
    forward: x torch > 1 on 1 of 2 workloads; worst 1.50 (b, N=1)
    fwd+bwd: x torch > 1 on 1 of 2 workloads; worst 1.30 (a, N=64)
    """
    lines = []
    for key, label in (("forward_x_torch", "forward"), ("fwd_bwd_x_torch", "fwd+bwd")):
        vals = [(r[key], r) for r in records if r.get(key) is not None]
        if vals:
            worst, rec = max(vals, key=lambda v: v[0])
            over = sum(v > limit for v, _ in vals)
            lines.append(
                f"{label}: x torch > {limit:g} on {over} of {len(vals)} workloads; "
                f"worst {worst:.2f} ({rec['name']}, N={rec['N']})"
            )
    return lines


OPS_COLUMNS = [
    ("layer workload", "<"),
    ("N", ">"),
    ("fwd ms", ">"),
    ("bwd ms", ">"),
    ("torch fwd", ">"),
    ("torch bwd", ">"),
    ("x torch", ">"),
    ("fwd x", ">"),
    ("bwd x", ">"),
]


def ops_rows(records):
    """One row per layer record for :data:`OPS_COLUMNS`."""
    rows = []
    for rec in records:
        c, t = rec["catlab"], rec.get("torch")
        ms = [None if d is None else f"{1e3 * d[k]:.3f}" for d in (c, t) for k in ("forward_s", "backward_s")]
        both = None if t is None else (c["forward_s"] + c["backward_s"]) / (t["forward_s"] + t["backward_s"])
        ratios = (
            [None] * 3
            if t is None
            else [
                f"{_paired(rec, 'fwd_bwd_x_torch', both):.2f}",
                f"{_paired(rec, 'forward_x_torch', c['forward_s'] / t['forward_s']):.2f}",
                f"{_paired(rec, 'backward_x_torch', c['backward_s'] / t['backward_s']):.2f}",
            ]
        )
        rows.append([rec["name"], str(rec["shape"][0])] + ms + ratios)
    return rows


OVERHEAD_COLUMNS = [("call on a 1x1x4x4 input", "<"), ("catlab us", ">"), ("torch us", ">"), ("x torch", ">")]


def overhead_rows(records):
    """One row per small-call record for :data:`OVERHEAD_COLUMNS`."""
    rows = []
    for rec in records:
        c, t = rec["catlab_us"], rec.get("torch_us")
        rows.append([rec["name"], f"{c:.1f}", _f(t, ".1f"), None if t is None else f"{c / t:.2f}"])
    return rows


MEMORY_COLUMNS = [
    ("library", "<"),
    ("peak extra MiB", ">"),
    ("x torch", ">"),
    ("tracemalloc MiB", ">"),
    ("outputs MiB", ">"),
]


def memory_rows(rec):
    """Rows (catlab, torch) of the memory record for :data:`MEMORY_COLUMNS`."""
    t = rec.get("torch_peak_bytes")
    rows = []
    for lib in ("catlab", "torch"):
        v = rec.get(f"{lib}_peak_bytes")
        rows.append(
            [
                lib,
                _f(_mib(v), ".1f"),
                None if v is None or not t else f"{v / t:.2f}",
                _f(_mib(rec.get(f"{lib}_tracemalloc_bytes")), ".1f"),
                f"{_mib(rec['output_bytes']):.1f}",
            ]
        )
    return rows


# ----------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------


def _progress(msg):
    print(msg, file=sys.stderr, flush=True)


_PEAK = []  # the matmul peak of this run, for the %peak fields of the records


def _time_contenders(cont, threads, repeats):
    """(forward seconds, backward seconds) per contender: catlab and torch interleaved, the rest afterwards.

    The NumPy baseline runs alone: its BLAS threads keep spinning for a while after each
    product and would slow whichever library ran next, far longer than the settling calls of
    :func:`time_interleaved` absorb.
    """
    head = {who: fb for who, fb in cont.items() if who in ("catlab", "torch")}
    rest = {who: fb for who, fb in cont.items() if who not in head}
    rf, rb = {}, {}
    with _threads.blas_limit(threads):
        for group, reps in ((head, repeats), (rest, max(1, min(repeats, 3)))):
            if group:
                rf.update(time_rounds({who: fb[0] for who, fb in group.items()}, reps))
                rb.update(time_rounds({who: fb[1] for who, fb in group.items()}, reps))
    tf = {who: statistics.median(v) for who, v in rf.items()}
    tb = {who: statistics.median(v) for who, v in rb.items()}
    return tf, tb, rf, rb


def _x_torch(rec, rf, rb):
    """The records' ratios to torch, round by round (:func:`paired_ratio`): forward, backward, fwd+bwd."""
    if "torch" not in rf:
        return
    fb = [f + b for f, b in zip(rf["catlab"], rb["catlab"])]
    tfb = [f + b for f, b in zip(rf["torch"], rb["torch"])]
    rec["forward_x_torch"] = paired_ratio(rf["catlab"], rf["torch"])
    rec["backward_x_torch"] = paired_ratio(rb["catlab"], rb["torch"])
    rec["fwd_bwd_x_torch"] = paired_ratio(fb, tfb)


def measure_conv(workload, torch, threads, repeats, rtol, tuned=True):
    """Check, then time forward and backward of every contender on one conv workload; the JSON record."""
    name, N, C, H, W, K, R, S, stride, padding = workload
    x, w, b, dy = make_conv_data(N, C, H, W, K, R, S, stride, padding)
    cont = conv_contenders(x, w, b, dy, stride, padding, torch)
    err = check_contenders(name, cont, rtol)
    P, Q = dy.shape[2:]
    flops = 2.0 * N * K * C * R * S * P * Q
    rec = {
        "name": name,
        "tuned": tuned,
        "N": N,
        "C": C,
        "H": H,
        "W": W,
        "K": K,
        "R": R,
        "S": S,
        "stride": stride,
        "padding": padding,
        "flops_forward": flops,
        "max_rel_err": err,
    }
    tf, tb, rf, rb = _time_contenders(cont, threads, repeats)
    for who in cont:
        rec[who] = {"forward_s": tf[who], "backward_s": tb[who]}
    fwd, bwd = cont["catlab"]
    c = rec["catlab"]
    c["mem_forward"] = extra_memory(fwd)
    c["mem_backward"] = extra_memory(bwd)
    c["mem_fwd+bwd"] = extra_memory(lambda: (fwd(), bwd()))
    c["mem_tracemalloc_bytes"], c["mem_rss_bytes"] = c["mem_fwd+bwd"]  # names of earlier versions
    for phase, fl in (("forward", flops), ("backward", 2 * flops)):
        c[f"{phase}_gflops"] = fl / c[f"{phase}_s"] / 1e9
        c[f"{phase}_pct_peak"] = 100 * c[f"{phase}_gflops"] / _PEAK[0] if _PEAK else None
        rec[f"{phase}_x_torch"] = None
    rec["fwd_bwd_x_torch"] = None
    _x_torch(rec, rf, rb)
    return rec


def measure_op(workload, torch, threads, repeats, rtol):
    """Check, then time one layer workload; the JSON record."""
    name, kind, shape, extra = workload
    x, dy, wlin = make_op_data(kind, shape, extra)
    cont = op_contenders(kind, x, extra, dy, wlin, torch)
    err = check_contenders(name, cont, rtol)
    rec = {"name": name, "kind": kind, "shape": list(shape), "extra": extra, "max_rel_err": err}
    tf, tb, rf, rb = _time_contenders(cont, threads, repeats)
    for who in cont:
        rec[who] = {"forward_s": tf[who], "backward_s": tb[who]}
    _x_torch(rec, rf, rb)
    return rec


def measure_overhead(torch, repeats, only=None, rtol=1e-4):
    """Microseconds per small call (median of ``repeats`` samples of many calls each), catlab and torch."""
    cont = {k: v for k, v in overhead_contenders(torch).items() if only is None or only in k}
    check_overhead(cont, rtol)
    out = []
    for name, fns in cont.items():
        t = time_interleaved(fns, repeats)
        out.append(
            {
                "name": name,
                "shape": list(TINY_SHAPE),
                "catlab_us": 1e6 * t["catlab"],
                "torch_us": 1e6 * t["torch"] if "torch" in t else None,
                "x_torch": t["catlab"] / t["torch"] if "torch" in t else None,
            }
        )
    return out


def measure_memory(workload, threads, use_torch):
    """The memory record: fresh-process peaks (:func:`peak_memory`) and catlab's in-process tracemalloc peak."""
    _, N, C, H, W, K, R, S, stride, padding = workload
    x, w, b, dy = make_conv_data(N, C, H, W, K, R, S, stride, padding)
    fwd, bwd = conv_contenders(x, w, b, dy, stride, padding)["catlab"]
    fwd(), bwd()  # warm-up
    peaks = peak_memory(workload, threads, ("catlab", "torch") if use_torch else ("catlab",))
    out_bytes = (dy.size + x.size + w.size + b.size) * x.itemsize  # y, dx, dweight, dbias
    return {
        "name": workload[0],
        "N": N,
        "method": "fresh process, RSS high-water mark minus RSS before the "
        "measured call (after one warm-up call), glibc mmap threshold 64 KiB",
        "catlab_peak_bytes": peaks.get("catlab"),
        "torch_peak_bytes": peaks.get("torch"),
        "catlab_tracemalloc_bytes": extra_memory(lambda: (fwd(), bwd()))[0],
        "torch_tracemalloc_bytes": None,
        "output_bytes": out_bytes,
        "x_torch": (peaks["catlab"] / peaks["torch"]) if peaks.get("torch") and peaks.get("catlab") else None,
    }


def select(args):
    """The workloads this run measures, after ``--quick``, ``--only`` and ``--batch``: (tuned, untuned, ops)."""
    batches = [64] if args.quick else [64, 1]
    tuned = [wl for b in batches for wl in _with_batch(CONV_WORKLOADS, b)]
    untuned = [wl for b in (64, 1) for wl in _with_batch(UNTUNED_CONV_WORKLOADS, b)]
    ops = [wl for b in batches for wl in _with_batch(OP_WORKLOADS, b)]
    if args.quick:
        tuned = [c for c in tuned if c[0].startswith(("LeNet", "VGG"))]
        untuned = [c for c in untuned if c[0] in QUICK_UNTUNED]
        ops = ops[::3]
    if args.only:
        tuned, untuned, ops = ([w for w in lst if args.only in w[0]] for lst in (tuned, untuned, ops))
    if args.batch:
        tuned = [c for c in tuned if c[1] == args.batch]
        untuned = [c for c in untuned if c[1] == args.batch]
        ops = [o for o in ops if o[2][0] == args.batch]
    return tuned, untuned, ops


def run(args):
    """Run the whole benchmark; return the JSON-ready result and print the tables."""
    import numba

    from . import get_num_threads, set_num_threads

    threads = args.threads or get_num_threads()
    set_num_threads(threads)
    torch = None if args.no_torch else _torch()
    if torch is not None:
        torch.set_num_threads(threads)
    peak = matmul_peak(threads, n=args.matmul_size)
    _PEAK[:] = [peak]
    print(
        f"catlab benchmark: {threads} thread(s), float32, median of {args.repeats} after warm-up; "
        f"torch {'not used' if torch is None else torch.__version__}"
    )
    print(f"float32 matmul peak (NumPy {args.matmul_size}^3): {peak:.1f} GFLOP/s")
    result = {
        "threads": threads,
        "matmul_peak_gflops": peak,
        "repeats": args.repeats,
        "numpy": np.__version__,
        "numba": numba.__version__,
        "torch": None if torch is None else torch.__version__,
        "conv": [],
        "ops": [],
        "overhead": [],
        "memory": None,
    }
    tuned, untuned, ops = select(args)

    for title, wls, is_tuned in (
        ("conv2d, the benchmark's shapes", tuned, True),
        ("conv2d, shapes not tuned for (odd sizes, channels, stride 2, 'same', 1x1, 7x7)", untuned, False),
    ):
        recs = []
        for wl in wls:
            _progress(f"  conv {wl[0]} N={wl[1]} ...")
            recs.append(measure_conv(wl, torch, threads, args.repeats, args.rtol, is_tuned))
        result["conv"] += recs
        if recs:
            print(f"\n{title}:")
            print("\n".join(render_table(CONV_COLUMNS, conv_rows(recs, peak)) + conv_summary(recs)))

    for wl in ops:
        _progress(f"  layer {wl[0]} N={wl[2][0]} ...")
        result["ops"].append(measure_op(wl, torch, threads, args.repeats, args.rtol))
    if result["ops"]:
        print("\nlayers, forward and backward:")
        print("\n".join(render_table(OPS_COLUMNS, ops_rows(result["ops"]))))

    if not args.no_overhead:
        _progress("  small calls ...")
        result["overhead"] = measure_overhead(torch, args.repeats, args.only, args.rtol)
        if result["overhead"]:
            print(
                "\nfixed cost of one functional call (tiny input: validation, allocation, dispatch), "
                "median microseconds per call:"
            )
            print("\n".join(render_table(OVERHEAD_COLUMNS, overhead_rows(result["overhead"]))))

    mw = MEMORY_WORKLOAD
    if not args.no_memory and (not args.only or args.only in mw[0]) and args.batch in (None, mw[1]):
        _progress("  memory (two new processes) ...")
        rec = result["memory"] = measure_memory(mw, threads, torch is not None)
        print(f"\npeak memory of one conv2d forward + backward, {mw[0]}, N={mw[1]}:")
        print("\n".join(render_table(MEMORY_COLUMNS, memory_rows(rec))))
        print(
            "peak extra: each library in a fresh process, after one warm-up call: resident-set high-water mark "
            "during one\ncall minus the resident size before it (glibc told to map blocks >= 64 KiB separately, "
            "so freed memory is\nreturned and not silently reused); tracemalloc: catlab's NumPy allocations only "
            "(it cannot see torch's);\noutputs: y, dx, dweight, dbias, the least any library must allocate."
        )

    if not args.no_compile_times:
        ct = compile_times(threads)
        result["compile"] = ct
        print("\nNew process, fresh Numba cache (cold) then the same cache again (warm), in seconds:")
        for label in ("cold", "warm"):
            d = ct[label]
            print(
                f"  {label}: import catlab {d['import']:.2f}, first conv2d forward+backward {d['conv_fwd_bwd']:.2f}, "
                f"rest of LeNet forward+backward {d['rest_of_lenet']:.2f}, total {d['total']:.2f}"
            )
    print(
        "\nx torch: catlab's time / torch's time at equal threads (below 1 means catlab is faster), the median "
        "over the rounds\nof the two times measured in the same round (ms columns: medians of each); "
        "-: not measured (no torch);\n%peak: share of the matmul peak above; mem: extra memory of one call "
        "in this process, tracemalloc peak\n(NumPy arrays: outputs, per-chunk sums) / resident-set peak increase "
        "(also Numba workspaces, but not memory\nreused from earlier calls)."
    )
    return result


def main(argv=None):
    """Command-line entry point: ``python -m catlab.bench [--quick] [--threads T] [--repeats R] [--json PATH]``."""
    ap = argparse.ArgumentParser(prog="python -m catlab.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--quick",
        action="store_true",
        help="a subset: tuned shapes at batch 64, a few untuned ones at 64 and 1; no compile times",
    )
    ap.add_argument(
        "--threads", type=int, default=0, help="threads for catlab, torch and NumPy (default: catlab.get_num_threads())"
    )
    ap.add_argument("--repeats", type=int, default=7, help="timed samples per measurement (median reported)")
    ap.add_argument("--matmul-size", type=int, default=2048, help="n of the n^3 float32 matmul peak measurement")
    ap.add_argument("--rtol", type=float, default=1e-4, help="accepted relative error between contenders")
    ap.add_argument("--no-torch", action="store_true", help="do not compare with PyTorch even if installed")
    ap.add_argument("--no-compile-times", action="store_true", help="skip the cold/warm compile measurement")
    ap.add_argument("--no-overhead", action="store_true", help="skip the small-call (fixed cost) table")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory comparison (two new processes)")
    ap.add_argument("--only", metavar="TEXT", help="only the workloads (and small calls) whose name contains TEXT")
    ap.add_argument("--batch", type=int, choices=(1, 64), help="only this batch size")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    args = ap.parse_args(argv)
    if args.quick:
        args.no_compile_times = True
    result = run(args)
    if args.json:
        from ._io import atomic_write

        with atomic_write(args.json) as f:
            f.write(json.dumps(result, indent=1).encode())
        print(f"JSON written to {args.json}")
    return result


if __name__ == "__main__":
    main()
