"""Every chunked kernel, run on Numba's own threads: one ``prange`` iteration per chunk.

Each kernel in the sibling modules does the items ``i0 <= it < i1`` of a
call. :mod:`catlab._threads` cuts ``range(items)`` into ``n`` contiguous
chunks, ``(t*items // n, (t+1)*items // n)`` for chunk t, and runs them at
the same time. It has two ways to do that:

- these wrappers: one compiled call that runs the chunks on Numba's
  OpenMP or TBB thread pool (a few microseconds to start), used where Numba
  has one of those two threading layers;
- its own pool of Python threads (20-80 microseconds per hand-off here),
  used everywhere else (Numba's ``workqueue`` layer is neither thread-safe
  nor fast to start, and GNU OpenMP cannot be used after ``fork``).

Both give the same chunks, so the same results. Each wrapper is named as its
kernel and takes ``(n, items, *args)``: the kernel's arguments without
``i0, i1``, where a kernel writes per-chunk partial sums (``dweight_t``,
``db_t``, ...) the wrapper takes arrays of shape ``(n, ...)`` and hands
chunk t its row t.
"""

from numba import prange

from . import activation as _act
from . import conv as _conv
from . import conv_tiled as _tiled
from . import linear as _linear
from . import norm as _norm
from . import pool as _pool
from . import winograd as _wino
from ._jit import njit


def _njit_parallel(f):
    return njit(cache=True, nogil=True, parallel=True)(f)


@_njit_parallel
def probe(n, out):
    """Write t into out[t] from chunk t (used once to start and identify Numba's threading layer)."""
    for t in prange(n):
        out[t] = t


# --- convolution (catlab._conv_paths) ----------------------------------------------------------


@_njit_parallel
def conv2d_direct_forward(n, items, x, w, b, R, S, ph, pw, dil_h, dil_w, P, Q, kb, y):
    for t in prange(n):
        _conv.conv2d_direct_forward(
            x, w, b, R, S, ph, pw, dil_h, dil_w, P, Q, kb, t * items // n, (t + 1) * items // n, y
        )


@_njit_parallel
def conv2d_wide_forward(n, items, x, w3, b, R, S, sh, sw, ph, pw, dil_h, dil_w, P, Q, y4):
    for t in prange(n):
        _conv.conv2d_wide_forward(
            x, w3, b, R, S, sh, sw, ph, pw, dil_h, dil_w, P, Q, t * items // n, (t + 1) * items // n, y4
        )


@_njit_parallel
def conv2d_tiled_forward(n, items, x, w3, b, R, S, sh, sw, ph, pw, dil_h, dil_w, P, Q, KB, parts, y4):
    for t in prange(n):
        _tiled.conv2d_tiled_forward(
            x, w3, b, R, S, sh, sw, ph, pw, dil_h, dil_w, P, Q, KB, parts, t * items // n, (t + 1) * items // n, y4
        )


@_njit_parallel
def conv2d_tiled_input_grad(n, items, dy4, wph, toffs, phases, Hd, Wd, T0, L0, sh, sw, KB, parts, dx):
    for t in prange(n):
        _tiled.conv2d_tiled_input_grad(
            dy4, wph, toffs, phases, Hd, Wd, T0, L0, sh, sw, KB, parts, t * items // n, (t + 1) * items // n, dx
        )


@_njit_parallel
def conv2d_ftiled_input_grad(n, items, dy4, wpv, toffs, phases, Hd, Wd, T0, L0, sh, sw, PT, parts, dx):
    for t in prange(n):
        _tiled.conv2d_ftiled_input_grad(
            dy4, wpv, toffs, phases, Hd, Wd, T0, L0, sh, sw, PT, parts, t * items // n, (t + 1) * items // n, dx
        )


@_njit_parallel
def conv2d_ftiled_forward(n, items, x, wpk, b, R, S, sh, sw, ph, pw, dil_h, dil_w, P, Q, PT, parts, y4):
    for t in prange(n):
        _tiled.conv2d_ftiled_forward(
            x, wpk, b, R, S, sh, sw, ph, pw, dil_h, dil_w, P, Q, PT, parts, t * items // n, (t + 1) * items // n, y4
        )


@_njit_parallel
def conv2d_tiled_weight_grad(
    n, items, x, dy4, R, S, sh, sw, ph, pw, dil_h, dil_w, P, Q, FB, parts, dweight_t, db_t, finite_t
):
    for t in prange(n):
        _tiled.conv2d_tiled_weight_grad(
            x,
            dy4,
            R,
            S,
            sh,
            sw,
            ph,
            pw,
            dil_h,
            dil_w,
            P,
            Q,
            FB,
            parts,
            t * items // n,
            (t + 1) * items // n,
            dweight_t[t],
            db_t[t],
            finite_t[t],
        )


@_njit_parallel
def conv2d_tiled_weight_grad_rows(
    n, items, x, dy4, R, S, sh, sw, ph, pw, dil_h, dil_w, P, Q, FB, parts, dweight, db, finite_t
):
    """As ``conv2d_tiled_weight_grad`` for one sample: its items are distinct (group, part)s, which write
    distinct rows of ``dweight`` (G, Kg, Cg*R*S) and ``db`` (K,) (zeroed by the caller), so every chunk adds
    into them directly; only ``finite_t`` (n, 1) is per chunk."""
    for t in prange(n):
        _tiled.conv2d_tiled_weight_grad(
            x,
            dy4,
            R,
            S,
            sh,
            sw,
            ph,
            pw,
            dil_h,
            dil_w,
            P,
            Q,
            FB,
            parts,
            t * items // n,
            (t + 1) * items // n,
            dweight,
            db,
            finite_t[t],
        )


@_njit_parallel
def conv2d_tiled_backward_pair(
    n, items, x, dy4, R, S, ph, pw, dil_h, dil_w, P, Q, FB, dweight, db, finite, src, w3, b, top, left, H, W, KB, dx4
):
    for t in prange(n):
        _tiled.conv2d_tiled_backward_pair(
            x, dy4, R, S, ph, pw, dil_h, dil_w, P, Q, FB, dweight, db, finite, src, w3, b, top, left, H, W, KB,
            t * items // n, (t + 1) * items // n, dx4,
        )  # fmt: skip


@_njit_parallel
def conv2d_tiled_backward_pair_strided(
    n, items, x, dy4, R, S, sh, sw, ph, pw, P, Q, FB, dweight, db, finite, G, wf, across, Tmax, toffs, phases, Hd,
    Wd, T0, L0, KB, dx,
):  # fmt: skip
    for t in prange(n):
        _tiled.conv2d_tiled_backward_pair_strided(
            x, dy4, R, S, sh, sw, ph, pw, P, Q, FB, dweight, db, finite, G, wf, across, Tmax, toffs, phases, Hd, Wd,
            T0, L0, KB, t * items // n, (t + 1) * items // n, dx,
        )  # fmt: skip


@_njit_parallel
def conv2d_im2col_forward(n, items, x, w3, b, R, S, sh, sw, ph, pw, dil_h, dil_w, P, Q, nb, y4):
    for t in prange(n):
        _conv.conv2d_im2col_forward(
            x, w3, b, R, S, sh, sw, ph, pw, dil_h, dil_w, P, Q, nb, t * items // n, (t + 1) * items // n, y4
        )


@_njit_parallel
def conv2d_direct_backward(n, items, x, w, dy, R, S, ph, pw, dil_h, dil_w, P, Q, dweight_p, db_p, dx):
    for t in prange(n):
        _conv.conv2d_direct_backward(
            x, w, dy, R, S, ph, pw, dil_h, dil_w, P, Q, t * items // n, (t + 1) * items // n, dweight_p[t], db_p[t], dx
        )


@_njit_parallel
def conv2d_wide_backward(n, items, x, wT, dy4, R, S, sh, sw, ph, pw, dil_h, dil_w, P, Q, dweight_p, db_p, dx):
    for t in prange(n):
        _conv.conv2d_wide_backward(
            x,
            wT,
            dy4,
            R,
            S,
            sh,
            sw,
            ph,
            pw,
            dil_h,
            dil_w,
            P,
            Q,
            t * items // n,
            (t + 1) * items // n,
            dweight_p[t],
            db_p[t],
            dx,
        )


@_njit_parallel
def conv2d_im2col_backward(
    n, items, x, wT, dy4, R, S, sh, sw, ph, pw, dil_h, dil_w, P, Q, nb, dweight_p, db_p, dcols_all, dx
):
    for t in prange(n):
        _conv.conv2d_im2col_backward(
            x,
            wT,
            dy4,
            R,
            S,
            sh,
            sw,
            ph,
            pw,
            dil_h,
            dil_w,
            P,
            Q,
            nb,
            t * items // n,
            (t + 1) * items // n,
            dweight_p[t],
            db_p[t],
            dcols_all,
            dx,
        )


@_njit_parallel
def conv2d_im2col_scatter(n, items, dcols_all, R, S, sh, sw, ph, pw, dil_h, dil_w, P, Q, dx):
    for t in prange(n):
        _conv.conv2d_im2col_scatter(
            dcols_all, R, S, sh, sw, ph, pw, dil_h, dil_w, P, Q, t * items // n, (t + 1) * items // n, dx
        )


@_njit_parallel
def winograd2_chunk(n, items, x, U, b, ph, pw, P, Q, rows_blk, relu, y):
    for t in prange(n):
        _wino.winograd2_chunk(x, U, b, ph, pw, P, Q, rows_blk, t * items // n, (t + 1) * items // n, relu, y)


@_njit_parallel
def winograd4_chunk(n, items, x, U, b, ph, pw, P, Q, rows_blk, relu, y):
    for t in prange(n):
        _wino.winograd4_chunk(x, U, b, ph, pw, P, Q, rows_blk, t * items // n, (t + 1) * items // n, relu, y)


# --- pooling, activation, linear (catlab.functional) --------------------------------------------


@_njit_parallel
def max_pool2d_forward(n, items, x3, kh, kw, sh, sw, ph, pw, dil_h, dil_w, y3):
    for t in prange(n):
        _pool.max_pool2d_forward(x3, kh, kw, sh, sw, ph, pw, dil_h, dil_w, t * items // n, (t + 1) * items // n, y3)


@_njit_parallel
def max_pool2d_indices_forward(n, items, x3, kh, kw, sh, sw, ph, pw, dil_h, dil_w, y3, ind3):
    for t in prange(n):
        _pool.max_pool2d_indices_forward(
            x3, kh, kw, sh, sw, ph, pw, dil_h, dil_w, t * items // n, (t + 1) * items // n, y3, ind3
        )


@_njit_parallel
def max_pool2d_backward(n, items, x3, dy3, kh, kw, sh, sw, ph, pw, dil_h, dil_w, dx3):
    for t in prange(n):
        _pool.max_pool2d_backward(
            x3, dy3, kh, kw, sh, sw, ph, pw, dil_h, dil_w, t * items // n, (t + 1) * items // n, dx3
        )


@_njit_parallel
def max_pool2d_indices_backward(n, items, dy2, ind2, dx2):
    for t in prange(n):
        _pool.max_pool2d_indices_backward(dy2, ind2, t * items // n, (t + 1) * items // n, dx2)


@_njit_parallel
def avg_pool2d_forward(n, items, x3, kh, kw, sh, sw, ph, pw, include_pad, divisor, y3):
    for t in prange(n):
        _pool.avg_pool2d_forward(
            x3, kh, kw, sh, sw, ph, pw, include_pad, divisor, t * items // n, (t + 1) * items // n, y3
        )


@_njit_parallel
def avg_pool2d_backward(n, items, dy3, kh, kw, sh, sw, ph, pw, include_pad, divisor, dx3):
    for t in prange(n):
        _pool.avg_pool2d_backward(
            dy3, kh, kw, sh, sw, ph, pw, include_pad, divisor, t * items // n, (t + 1) * items // n, dx3
        )


@_njit_parallel
def relu_forward(n, items, x, y):
    for t in prange(n):
        _act.relu_forward(x, t * items // n, (t + 1) * items // n, y)


@_njit_parallel
def relu_backward(n, items, dy, x, dx):
    for t in prange(n):
        _act.relu_backward(dy, x, t * items // n, (t + 1) * items // n, dx)


@_njit_parallel
def matmul_rows(n, items, a, b, out):
    for t in prange(n):
        _linear.matmul_rows(a, b, t * items // n, (t + 1) * items // n, out)


@_njit_parallel
def matvec_rows(n, items, a, v, out):
    for t in prange(n):
        _linear.matvec_rows(a, v, t * items // n, (t + 1) * items // n, out)


@_njit_parallel
def linear_outer_backward(n, items, a, b, out):
    for t in prange(n):
        _linear.linear_outer_backward(a, b, t * items // n, (t + 1) * items // n, out)


@_njit_parallel
def linear_tiled_forward(n, items, x, w, b, PT, parts, y):
    for t in prange(n):
        _linear.linear_tiled_forward(x, w, b, PT, parts, t * items // n, (t + 1) * items // n, y)


@_njit_parallel
def linear_tiled_backward(n, items, dy, x, w, PT, dx, dw):
    for t in prange(n):
        _linear.linear_tiled_backward(dy, x, w, PT, t * items // n, (t + 1) * items // n, dx, dw)


# --- normalisation, dropout, global pooling (catlab.functional) ----------------------------------


@_njit_parallel
def sums(n, items, x3, shift, sx, sxx):
    for t in prange(n):
        _norm.sums(x3, shift, t * items // n, (t + 1) * items // n, sx, sxx)


@_njit_parallel
def sums_backward(n, items, x3, dy3, shift, sx, sxx, sdy, sdyx):
    for t in prange(n):
        _norm.sums_backward(x3, dy3, shift, t * items // n, (t + 1) * items // n, sx, sxx, sdy, sdyx)


@_njit_parallel
def scale_shift(n, items, x3, a, b, y3):
    for t in prange(n):
        _norm.scale_shift(x3, a, b, t * items // n, (t + 1) * items // n, y3)


@_njit_parallel
def scale_shift2(n, items, dy3, x3, a, k, b, dx3):
    for t in prange(n):
        _norm.scale_shift2(dy3, x3, a, k, b, t * items // n, (t + 1) * items // n, dx3)


@_njit_parallel
def global_avg_pool_forward(n, items, x2, y1):
    for t in prange(n):
        _norm.global_avg_pool_forward(x2, t * items // n, (t + 1) * items // n, y1)


@_njit_parallel
def adaptive_avg_pool2d_forward(n, items, x3, y3):
    for t in prange(n):
        _norm.adaptive_avg_pool2d_forward(x3, t * items // n, (t + 1) * items // n, y3)


@_njit_parallel
def adaptive_avg_pool2d_backward(n, items, dy3, dx3):
    for t in prange(n):
        _norm.adaptive_avg_pool2d_backward(dy3, t * items // n, (t + 1) * items // n, dx3)


@_njit_parallel
def masked_scale(n, items, x, mask, scale, y):
    for t in prange(n):
        _norm.masked_scale(x, mask, scale, t * items // n, (t + 1) * items // n, y)
