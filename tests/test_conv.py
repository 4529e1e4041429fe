"""conv1d/conv2d forward and backward: known answers, reference loops, torch, gradient checks, properties."""

import numpy as np
import pytest
import reference as ref
from hypothesis import given
from hypothesis import strategies as st
from torch_compare import assert_matches_torch, tolerance

from catlab import functional as F
from catlab.gradcheck import gradcheck

TOL = 1e-6  # gradient checks, float64


def test_conv2d_known_answer_3x3_input_2x2_kernel():
    x = np.arange(9.0).reshape(1, 1, 3, 3)  # [[0 1 2] [3 4 5] [6 7 8]]
    w = np.array([[[[1.0, 0.0], [0.0, -1.0]]]])  # top-left minus bottom-right
    y = F.conv2d(x, w, np.array([10.0]))
    # every 2x2 window gives x[i, j] - x[i+1, j+1] = -4, plus the bias 10
    np.testing.assert_array_equal(y, np.full((1, 1, 2, 2), 6.0))


def test_conv2d_is_cross_correlation_not_flipped():
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 1.0  # an impulse in the centre
    w = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    y = F.conv2d(x, w, padding=1)
    # correlation of an impulse returns the kernel rotated by 180 degrees
    np.testing.assert_array_equal(y[0, 0], w[0, 0, ::-1, ::-1])


def test_conv2d_5x5x3_filter_on_32x32x3_gives_28x28_of_75():
    x = np.ones((1, 3, 32, 32), dtype=np.float32)
    w = np.ones((6, 3, 5, 5), dtype=np.float32)
    y = F.conv2d(x, w)
    assert y.shape == (1, 6, 28, 28) and y.dtype == np.float32
    assert np.all(y == 75.0)  # 5 * 5 * 3 weights, each times one


def test_output_sizes_from_the_notes():
    assert F.conv_output_size(7, 3, stride=1) == 5
    assert F.conv_output_size(7, 3, stride=2) == 3
    assert F.conv_output_size(32, 5, padding=2) == 32
    assert F.conv_output_size(227, 11, stride=4) == 55


def test_stride_and_padding_by_hand():
    x = np.ones((1, 1, 4, 4))
    y = F.conv2d(x, np.ones((1, 1, 3, 3)), stride=2, padding=1)
    # windows at (-1,-1), (-1,1), (1,-1), (1,1): they cover 4, 6, 6, 9 real pixels
    np.testing.assert_array_equal(y[0, 0], [[4.0, 6.0], [6.0, 9.0]])


def test_dilation_by_hand():
    x = np.arange(25.0).reshape(1, 1, 5, 5)
    w = np.zeros((1, 1, 2, 2))
    w[0, 0, 1, 1] = 1.0
    y = F.conv2d(x, w, dilation=2)  # picks x[p + 2, q + 2]
    np.testing.assert_array_equal(y[0, 0], x[0, 0, 2:, 2:])


def test_groups_keep_channels_apart():
    x = np.stack([np.ones((3, 3)), 2 * np.ones((3, 3))])[None]  # channel 0 ones, channel 1 twos
    w = np.ones((2, 1, 3, 3))
    y = F.conv2d(x, w, groups=2)  # depthwise: each filter sees one channel
    np.testing.assert_array_equal(y.reshape(-1), [9.0, 18.0])


def test_conv1d_moving_average_by_hand():
    x = np.array([[[1.0, 2.0, 3.0, 4.0, 5.0]]])
    y = F.conv1d(x, np.full((1, 1, 2), 0.5))
    np.testing.assert_allclose(y, [[[1.5, 2.5, 3.5, 4.5]]])


def test_conv1d_same_padding_even_kernel_pads_right_like_torch():
    x = np.array([[[1.0, 2.0, 3.0]]])
    y = F.conv1d(x, np.array([[[1.0, 10.0]]]), padding="same")
    # total padding 1 goes on the right: [1 2 3 0] -> 1+20, 2+30, 3+0
    np.testing.assert_array_equal(y, [[[21.0, 32.0, 3.0]]])


def test_backward_known_answer_impulse():
    x = np.zeros((1, 1, 3, 3))
    w = np.arange(4.0).reshape(1, 1, 2, 2)
    dy = np.zeros((1, 1, 2, 2))
    dy[0, 0, 0, 0] = 1.0  # only the top-left output matters
    dx, dw, db = F.conv2d_backward(dy, x, w)
    expected = np.zeros((3, 3))
    expected[:2, :2] = w[0, 0]
    np.testing.assert_array_equal(dx[0, 0], expected)
    np.testing.assert_array_equal(dw, np.zeros_like(w))
    np.testing.assert_array_equal(db, [1.0])


CONFIGS = [
    # N, C, H, W, K, R, S, stride, padding, dilation, groups
    (1, 1, 5, 5, 1, 1, 1, 1, 0, 1, 1),
    (2, 3, 7, 6, 4, 3, 3, 1, 1, 1, 1),
    (2, 2, 9, 8, 3, 5, 3, (2, 1), (2, 0), 1, 1),
    (1, 4, 8, 8, 6, 3, 3, 3, 3, 2, 2),
    (3, 6, 10, 7, 6, 7, 2, 1, (3, 1), (1, 2), 3),
    (2, 4, 6, 9, 4, 2, 4, 2, 0, (2, 1), 4),
    (1, 3, 11, 11, 2, 4, 4, 1, "same", 1, 1),
    (2, 2, 6, 7, 2, 3, 2, 1, "same", 2, 2),
    (1, 1, 4, 4, 1, 4, 4, 1, "valid", 1, 1),
    (2, 3, 5, 13, 5, 1, 6, (1, 3), (0, 2), 1, 1),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cfg", CONFIGS)
def test_conv2d_matches_reference(cfg, dtype, rng):
    N, C, H, W, K, R, S, stride, padding, dilation, groups = cfg
    x = rng.normal(size=(N, C, H, W)).astype(dtype)
    w = rng.normal(size=(K, C // groups, R, S)).astype(dtype)
    b = rng.normal(size=K).astype(dtype)
    s2 = stride if isinstance(stride, tuple) else (stride, stride)
    d2 = dilation if isinstance(dilation, tuple) else (dilation, dilation)
    pad = ref.pad_edges(padding, (R, S), d2)
    x_before, w_before = x.copy(), w.copy()

    y = F.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
    y_ref = ref.conv2d(x, w, b, s2, pad, d2, groups)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    assert y.dtype == dtype
    np.testing.assert_allclose(y, y_ref, rtol=tol, atol=tol)

    dy = rng.normal(size=y.shape).astype(dtype)
    dx, dw, db = F.conv2d_backward(dy, x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
    dx_ref, dw_ref, db_ref = ref.conv2d_backward(dy, x, w, s2, pad, d2, groups)
    assert dx.dtype == dw.dtype == db.dtype == dtype
    np.testing.assert_allclose(dx, dx_ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(dw, dw_ref, rtol=tol, atol=10 * tol)
    np.testing.assert_allclose(db, db_ref, rtol=tol, atol=10 * tol)
    # inputs are never modified in place
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(w, w_before)


@pytest.mark.parametrize("cfg", [(2, 3, 9, 4, 3, 1, 1, 1), (1, 4, 12, 2, 3, 2, 2, 2), (3, 2, 7, 3, 4, 1, "same", 2)])
def test_conv1d_matches_reference(cfg, rng):
    N, C, L, K, k, stride, padding, dilation = cfg
    groups = 1 if padding == "same" else (C if K % C == 0 else 1)
    x = rng.normal(size=(N, C, L))
    w = rng.normal(size=(K, C // groups, k))
    b = rng.normal(size=K)
    y = F.conv1d(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
    pad = ref.pad_edges(padding, (1, k), (1, dilation))
    pad = ((0, 0), pad[1])
    y_ref = ref.conv2d(x[:, :, None], w[:, :, None], b, (1, stride), pad, (1, dilation), groups)[:, :, 0]
    np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-10)
    dy = rng.normal(size=y.shape)
    dx, dw, db = F.conv1d_backward(dy, x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
    dx_ref, dw_ref, db_ref = ref.conv2d_backward(
        dy[:, :, None], x[:, :, None], w[:, :, None], (1, stride), pad, (1, dilation), groups
    )
    np.testing.assert_allclose(dx, dx_ref[:, :, 0], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dw, dw_ref[:, :, 0], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(db, db_ref, rtol=1e-10, atol=1e-10)


def test_non_contiguous_inputs_give_correct_results(rng):
    big = rng.normal(size=(4, 6, 12, 14))
    x = big[::2, ::2, 1::1, ::2]  # strided view, shape (2, 3, 11, 7)
    wbig = rng.normal(size=(3, 5, 3, 3)).transpose(1, 0, 2, 3)  # (5, 3, 3, 3), not C-contiguous
    assert not x.flags.c_contiguous and not wbig.flags.c_contiguous
    y = F.conv2d(x, wbig, padding=1)
    y_ref = ref.conv2d(np.ascontiguousarray(x), np.ascontiguousarray(wbig), None, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    np.testing.assert_allclose(y, y_ref, atol=1e-10)
    dy = rng.normal(size=y.shape).transpose(0, 1, 3, 2).copy().transpose(0, 1, 3, 2)
    dx, dw, _ = F.conv2d_backward(dy, x, wbig, padding=1)
    dx_ref, dw_ref, _ = ref.conv2d_backward(
        dy, np.ascontiguousarray(x), np.ascontiguousarray(wbig), (1, 1), ((1, 1), (1, 1)), (1, 1), 1
    )
    np.testing.assert_allclose(dx, dx_ref, atol=1e-10)
    np.testing.assert_allclose(dw, dw_ref, atol=1e-10)


def test_results_are_deterministic(rng):
    x = rng.normal(size=(8, 4, 12, 12)).astype(np.float32)
    w = rng.normal(size=(5, 4, 3, 3)).astype(np.float32)
    dy = rng.normal(size=(8, 5, 10, 10)).astype(np.float32)
    a = F.conv2d_backward(dy, x, w)
    b = F.conv2d_backward(dy, x, w)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)


@st.composite
def conv_configs(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    C = groups * draw(st.integers(1, 2))
    K = groups * draw(st.integers(1, 2))
    R, S = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    ph, pw = draw(st.integers(0, 3)), draw(st.integers(0, 3))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    lo_h, lo_w = max(1, dh * (R - 1) + 1 - 2 * ph), max(1, dw * (S - 1) + 1 - 2 * pw)
    H = draw(st.integers(lo_h, max(lo_h, 12)))  # lo can exceed 12 (R = 7, dh = 2, ph = 0)
    W = draw(st.integers(lo_w, max(lo_w, 12)))
    N = draw(st.integers(1, 3))
    return N, C, H, W, K, R, S, (sh, sw), (ph, pw), (dh, dw), groups


@given(conv_configs(), st.integers(0, 2**31 - 1))
def test_conv2d_property_shape_and_reference(cfg, seed):
    N, C, H, W, K, R, S, stride, padding, dilation, groups = cfg
    r = np.random.default_rng(seed)
    x = r.normal(size=(N, C, H, W))
    w = r.normal(size=(K, C // groups, R, S))
    y = F.conv2d(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
    P = F.conv_output_size(H, R, stride[0], padding[0], dilation[0])
    Q = F.conv_output_size(W, S, stride[1], padding[1], dilation[1])
    assert y.shape == (N, K, P, Q)
    pad = ((padding[0], padding[0]), (padding[1], padding[1]))
    np.testing.assert_allclose(y, ref.conv2d(x, w, None, stride, pad, dilation, groups), atol=1e-9)
    dy = r.normal(size=y.shape)
    got = F.conv2d_backward(dy, x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
    want = ref.conv2d_backward(dy, x, w, stride, pad, dilation, groups)
    for g, e in zip(got, want):
        np.testing.assert_allclose(g, e, atol=1e-9)


@given(st.integers(1, 40), st.integers(1, 9), st.integers(1, 4), st.integers(1, 3))
def test_conv1d_same_keeps_length(L, k, dilation, channels):
    x = np.ones((1, channels, L))
    w = np.ones((2, channels, k))
    if dilation * (k - 1) + 1 > L + dilation * (k - 1):
        return
    assert F.conv1d(x, w, padding="same", dilation=dilation).shape == (1, 2, L)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(stride=2, padding=1),
        dict(stride=(2, 1), padding=(0, 3), dilation=(1, 2)),
        dict(padding="same"),
        dict(padding="same", dilation=2),
        dict(padding="valid", groups=2),
        dict(groups=4, stride=3, padding=2),
    ],
)
@pytest.mark.filterwarnings("ignore:Using padding=.same.:UserWarning")
def test_conv2d_matches_torch(kw, dtype, rng):
    torch = pytest.importorskip("torch")
    groups = kw.get("groups", 1)
    x = rng.normal(size=(3, 4, 11, 10)).astype(dtype)
    w = rng.normal(size=(8, 4 // groups, 4, 3)).astype(dtype)  # even kernel height: asymmetric 'same'
    b = rng.normal(size=8).astype(dtype)
    assert_matches_torch(
        lambda x, w, b: F.conv2d(x, w, b, **kw),
        lambda dy, x, w, b: F.conv2d_backward(dy, x, w, **kw),
        lambda x, w, b: torch.nn.functional.conv2d(x, w, b, **kw),
        [x, w, b],
        names=["x", "weight", "bias"],
    )


@pytest.mark.parametrize("kw", [dict(), dict(stride=3, padding=2, dilation=2), dict(padding="same", groups=2)])
def test_conv1d_matches_torch(kw, rng):
    torch = pytest.importorskip("torch")
    x = rng.normal(size=(2, 4, 17))
    w = rng.normal(size=(6, 4 // kw.get("groups", 1), 4))
    b = rng.normal(size=6)
    assert_matches_torch(
        lambda x, w, b: F.conv1d(x, w, b, **kw),
        lambda dy, x, w, b: F.conv1d_backward(dy, x, w, **kw),
        lambda x, w, b: torch.nn.functional.conv1d(x, w, b, **kw),
        [x, w, b],
        **tolerance(np.float64),
    )


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(stride=2, padding=1),
        dict(stride=(1, 2), padding=(2, 0), dilation=(2, 1)),
        dict(padding="same", dilation=2),
        dict(groups=2, stride=3, padding=3),
    ],
)
def test_conv2d_gradients(kw, rng):
    groups = kw.get("groups", 1)
    x = rng.normal(size=(2, 4, 7, 8))
    w = rng.normal(size=(4, 4 // groups, 3, 2))
    b = rng.normal(size=4)
    err = gradcheck(
        lambda x, w, b: F.conv2d(x, w, b, **kw),
        lambda dy, x, w, b: F.conv2d_backward(dy, x, w, **kw),
        [x, w, b],
        ["x", "w", "b"],
    )
    assert max(err.values()) < TOL, err


@pytest.mark.parametrize("kw", [dict(), dict(stride=2, padding=2, dilation=2), dict(padding="same", groups=3)])
def test_conv1d_gradients(kw, rng):
    x = rng.normal(size=(2, 3, 11))
    w = rng.normal(size=(3, 3 // kw.get("groups", 1), 4))
    b = rng.normal(size=3)
    err = gradcheck(
        lambda x, w, b: F.conv1d(x, w, b, **kw), lambda dy, x, w, b: F.conv1d_backward(dy, x, w, **kw), [x, w, b]
    )
    assert max(err.values()) < TOL, err


def test_geometry_cache_never_skips_a_check():
    """The geometry of a call is reused for the same shapes and arguments, never for others: a bool equals an
    int as a dict key, so ``stride=True`` after ``stride=1`` must still be refused, as must a kernel that no
    longer fits after a valid call with a larger input."""
    from catlab import functional as Fm

    x = np.ones((1, 2, 6, 6), np.float32)
    w = np.ones((3, 2, 3, 3), np.float32)
    Fm._geometry_cache.clear()
    y = F.conv2d(x, w, stride=1, padding=1)
    assert y.shape == (1, 3, 6, 6) and len(Fm._geometry_cache) == 1
    np.testing.assert_array_equal(F.conv2d(x, w, stride=1, padding=1), y)  # from the cache: the same answer
    assert len(Fm._geometry_cache) == 1
    with pytest.raises(TypeError, match="stride"):
        F.conv2d(x, w, stride=True, padding=1)
    with pytest.raises(ValueError, match="fit in the padded input"):
        F.conv2d(x[:, :, :2, :2], w)
    with pytest.raises(ValueError, match="'same' is not supported for strided"):
        F.conv2d(x, w, stride=2, padding="same")
    assert F.conv2d(x, w, padding="same").shape == (1, 3, 6, 6)  # strings and 1-D views are cached too
    x1, w1 = np.ones((2, 2, 9), np.float32), np.ones((4, 2, 3), np.float32)
    assert F.conv1d(x1, w1, stride=2).shape == F.conv1d(x1, w1, stride=2).shape == (2, 4, 4)
