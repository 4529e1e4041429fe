"""Differential fuzz against torch: every convolution path, forward and backward, with awkward values.

Hypothesis draws a path (direct, wide or im2col; the test checks the choice),
a geometry for it, float32 or float64, inputs that may be non-contiguous, and
sprinkles inf, -inf, NaN, huge and denormal values into x, the weight and dy.
catlab must put NaN and the infinities exactly where torch does and agree
elsewhere within a tolerance scaled to the sizes of the terms summed
(cancellation between huge terms is legitimate rounding, not a bug).

torch runs in float64: its float32 CPU convolution (oneDNN) leaves the zero
padding out of its products, so an infinity next to the padding spreads less
there than in torch's float64 and in catlab's every dtype (see conv2d's notes).
"""

from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from catlab import _conv_paths as paths
from catlab import _threads as TH
from catlab import functional as F

torch = pytest.importorskip("torch")

SPECIAL = {
    np.dtype(np.float32): [np.inf, -np.inf, np.nan, 3e15, -3e15, 1e-40, 0.0],  # 1e-40: a float32 denormal
    np.dtype(np.float64): [np.inf, -np.inf, np.nan, 3e150, -3e150, 1e-310, 0.0],
}


@st.composite
def geometries(draw):
    path = draw(st.sampled_from(["direct", "wide", "im2col"]))
    R, S = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pad = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    stride, groups = (1, 1), 1
    if path == "direct":
        N, C, K = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 8))
    elif path == "wide":
        N, C, K = draw(st.integers(2, 3)), draw(st.integers(4, 6)), draw(st.integers(1, 9))
        stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    else:  # one sample, fewer than the threads: blocks of output rows
        N, C, K = 1, 4, draw(st.sampled_from([2, 4, 6]))
        groups = draw(st.sampled_from([1, 2]))
        if draw(st.booleans()):
            stride = (draw(st.integers(1, 3)), draw(st.integers(2, 3)))
    H = draw(st.integers(dil[0] * (R - 1) + 1, 9))
    W = draw(st.integers(dil[1] * (S - 1) + 1, 9))
    if path == "wide":  # the padded width may add at most WIDE_MAX_EXTRA of work
        P = (H + 2 * pad[0] - dil[0] * (R - 1) - 1) // stride[0] + 1
        Q = (W + 2 * pad[1] - dil[1] * (S - 1) - 1) // stride[1] + 1
        assume(paths.use_wide(N, 2, *stride, P, Q, R, S, *dil))
    return path, (N, C, H, W), (K, C // groups, R, S), dict(stride=stride, padding=pad, dilation=dil, groups=groups)


def _sprinkle(a, rng, specials, count):
    flat = a.reshape(-1)
    for i in rng.choice(flat.size, size=min(count, flat.size), replace=False):
        flat[i] = specials[rng.integers(len(specials))]


def _non_contiguous(a):
    """The same values in a strided view (every other element of a larger array)."""
    big = np.full(a.shape[:-1] + (2 * a.shape[-1],), 7.0, dtype=a.dtype)
    view = big[..., ::2]
    view[...] = a
    assert not view.flags.c_contiguous or a.size == 1  # NumPy calls any one-element array contiguous
    return view


def _torch64(x, w, dy, kw):
    xt = torch.tensor(x.astype(np.float64), requires_grad=True)
    wt = torch.tensor(w.astype(np.float64), requires_grad=True)
    y = torch.nn.functional.conv2d(xt, wt, **kw)
    y.backward(torch.tensor(dy.astype(np.float64)))
    return y.detach().numpy(), xt.grad.numpy(), wt.grad.numpy()


def _check(name, mine, theirs, scale, dtype):
    theirs = theirs.astype(dtype)  # rounded as a float32 result would be
    for what, f in (("NaN", np.isnan), ("+inf", np.isposinf), ("-inf", np.isneginf)):
        np.testing.assert_array_equal(f(mine), f(theirs), err_msg=f"{name}: {what} in other places")
    ok = np.isfinite(theirs)
    eps = 1e-5 if dtype == np.float32 else 1e-12
    err = np.abs(mine[ok].astype(np.float64) - theirs[ok])
    bound = eps * (np.abs(theirs[ok]) + scale[ok]) + 1e-300
    assert np.all(err <= bound), f"{name}: max error {err.max()} against bound {bound[np.argmax(err - bound)]}"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(
    geo=geometries(),
    dtype=st.sampled_from([np.float32, np.float64]),
    seed=st.integers(0, 2**32 - 1),
    counts=st.tuples(st.integers(0, 3), st.integers(0, 2), st.integers(0, 2)),
    strided=st.booleans(),
)
def test_every_conv_path_matches_torch_with_inf_nan_huge_and_denormal_values(geo, dtype, seed, counts, strided):
    path, xs, ws, kw = geo
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    with (
        mock.patch.object(TH, "num_threads", lambda: 2),  # the path choice depends on the thread count
        mock.patch.object(paths, "WIDE_ONE_THREAD_WORK", 0),  # one sample on two threads: im2col's row blocks
    ):
        y_shape = F.conv2d(x, w, **kw).shape
        N, K, P, Q = y_shape
        geo_ = paths.Geometry(*kw["stride"], *kw["padding"], *kw["dilation"], P, Q)
        assert paths.choose(N, xs[1], K, kw["groups"], ws[2], ws[3], geo_, 2) == path
        dy = rng.standard_normal(y_shape).astype(dtype)
        for a, c in zip((x, w, dy), counts):
            _sprinkle(a, rng, SPECIAL[dtype], c)
        x_in, w_in, dy_in = (_non_contiguous(a) for a in (x, w, dy)) if strided else (x, w, dy)
        before = [a.copy() for a in (x_in, w_in, dy_in)]
        y = F.conv2d(x_in, w_in, **kw)
        dx, dweight, _ = F.conv2d_backward(dy_in, x_in, w_in, **kw)
    for a, b in zip((x_in, w_in, dy_in), before):  # inputs untouched
        np.testing.assert_array_equal(a, b)
    assert y.dtype == dx.dtype == dweight.dtype == dtype
    want = _torch64(x, w, dy, kw)
    # the size of the terms each output sums: the same convolution of the absolute values (0 for inf/NaN)
    scale = _torch64(*(np.nan_to_num(np.abs(a), nan=0.0, posinf=0.0) for a in (x, w, dy)), kw)
    for name, mine, theirs, sc in zip(("output", "dx", "dweight"), (y, dx, dweight), want, scale):
        _check(f"{path} {name}", mine, theirs, sc, dtype)
