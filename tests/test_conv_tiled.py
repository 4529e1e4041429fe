"""The register-tiled convolution (catlab._kernels.conv_tiled) and its vector type (catlab._kernels.simd).

Known answers for the seven vector operations, compiled and as Python; the
tiled forward against the reference loops on every geometry it takes
(stride phases, dilation, asymmetric padding, groups, filter counts that are
not whole blocks, planes smaller than one tile), for one and several chunks
and both thread backends; inf and NaN; and the path choice.
"""

import functools
import os
import subprocess
import sys

import numba
import numpy as np
import pytest
import reference as ref
from torch_compare import assert_matches_torch

from catlab import _conv_paths as paths
from catlab import _threads as TH
from catlab import functional as F
from catlab._kernels import conv_tiled as CT
from catlab._kernels import parallel as PAR
from catlab._kernels import simd

# --- the vector operations ----------------------------------------------------------------------


@numba.njit(cache=False)
def _axpy16(a, x, y, i, out):
    """out[i:i+16] = a * x[i:i+16] + y[i:i+16], through the five operations."""
    acc = simd.vfma(simd.vsplat(a), simd.vload(x, i), simd.vload(y, i))
    acc = simd.vfma(simd.vzero(), acc, acc)  # 0 * acc + acc: unchanged
    acc = simd.vfma(simd.vbcast(x, 1), acc, simd.vzero())  # times x[1] = 1 in every lane
    simd.vstore(out, i, acc)


def test_vector_operations_known_answer():
    x = np.arange(40, dtype=np.float32)
    y = np.full(40, 0.5, dtype=np.float32)
    out = np.zeros(40, dtype=np.float32)
    _axpy16(np.float32(2.0), x, y, 3, out)
    want = np.zeros(40, dtype=np.float32)
    want[3:19] = 2.0 * np.arange(3, 19) + 0.5
    np.testing.assert_array_equal(out, want)  # small integers and halves: exact in float32
    assert (x == np.arange(40)).all() and (y == 0.5).all()  # inputs untouched


def test_vector_operations_in_python():
    """The Python versions (used under NUMBA_DISABLE_JIT) give the same answers and check bounds."""
    x = np.arange(20, dtype=np.float32)
    v = simd.vfma(simd.vsplat(3.0), simd.vload(x, 4), simd.vzero())
    np.testing.assert_array_equal(v, 3.0 * np.arange(4, 20))
    out = np.zeros(20, dtype=np.float32)
    simd.vstore(out, 2, v)
    np.testing.assert_array_equal(out[2:18], v)
    with pytest.raises(IndexError, match="16 lanes"):
        simd.vload(x, 5)
    with pytest.raises(IndexError, match="16 lanes"):
        simd.vstore(out, -1, v)
    np.testing.assert_array_equal(simd.vbcast(x, 7), np.full(16, 7.0))
    with pytest.raises(IndexError, match="broadcast"):
        simd.vbcast(x, 20)


def test_transpose_of_sixteen_vectors():
    """vtranspose16 compiled (4 rounds of shuffles in registers) and in Python: out[j, :16] = a[:16, j], the rest
    of both arrays untouched; too few rows or lanes is an IndexError in Python (and under NUMBA_BOUNDSCHECK)."""

    @numba.njit(cache=False)
    def transpose(a, out):
        simd.vtranspose16(a, out)

    a = np.random.default_rng(3).normal(size=(18, 20)).astype(np.float32)
    for fn in (transpose, simd.vtranspose16):
        out = np.full((17, 16), 7.0, dtype=np.float32)
        fn(a, out)
        np.testing.assert_array_equal(out[:16], a[:16, :16].T)
        np.testing.assert_array_equal(out[16], 7.0)
    with pytest.raises(IndexError, match="16 rows"):
        simd.vtranspose16(a[:15], np.empty((16, 16), np.float32))
    first_lanes = [simd._interleave_masks(k)[0][:4] for k in (8, 4, 2, 1)]  # lane j from a (< 16) or b
    assert first_lanes == [[0, 1, 2, 3], [0, 1, 2, 3], [0, 1, 16, 17], [0, 16, 2, 18]]


@pytest.mark.parametrize("taps", [1, 9, 144])
def test_run_tiles_equal_the_tiles_of_separate_bases(taps):
    """_ftile16_run and _ftile32_run (positions side by side: one address register) give the sums of _ftile16
    and _ftile32 bit for bit when the bases are b0, b0 + 1, ...; from any column of the weight rows (16
    filters), and both equal float64 sums."""
    r = np.random.default_rng(taps)
    xp = r.normal(size=400).astype(np.float32)
    toff = np.sort(r.choice(380, size=taps)).astype(np.intp)
    wv = r.normal(size=(taps, 40)).astype(np.float32)
    x64 = xp.astype(np.float64)
    for b0, col in ((0, 0), (3, 24), (4, 7)):
        run = np.full((16, 16), np.nan, np.float32)
        tile = np.full((16, 16), np.nan, np.float32)
        CT._ftile16_run(xp, toff, wv, col, b0, run)
        CT._ftile16(xp, toff, wv, col, np.arange(b0, b0 + 16, dtype=np.intp), tile)
        np.testing.assert_array_equal(run, tile)
        want = x64[toff[None, :] + b0 + np.arange(16)[:, None]] @ wv[:, col : col + 16]
        np.testing.assert_allclose(run, want, rtol=1e-5, atol=1e-5 * np.sqrt(taps))
        w32 = np.ascontiguousarray(wv[:, :32])
        run, tile = np.full((8, 32), np.nan, np.float32), np.full((8, 32), np.nan, np.float32)
        CT._ftile32_run(xp, toff, w32, b0, run)
        CT._ftile32(xp, toff, w32, np.arange(b0, b0 + 8, dtype=np.intp), tile)
        np.testing.assert_array_equal(run, tile)
        want = x64[toff[None, :] + b0 + np.arange(8)[:, None]] @ w32
        np.testing.assert_allclose(run, want, rtol=1e-5, atol=1e-5 * np.sqrt(taps))


def test_host_cpu_name_is_what_numba_compiles_for(monkeypatch):
    """LLVM's name of the host CPU, or the one Numba is told to compile for (NUMBA_CPU_NAME)."""
    from llvmlite import binding

    monkeypatch.setattr(simd.config, "CPU_NAME", None)
    assert simd.host_cpu_name() == binding.get_host_cpu_name() != ""
    monkeypatch.setattr(simd.config, "CPU_NAME", "generic")
    assert simd.host_cpu_name() == "generic"
    assert not simd.host_has_avx512() and not simd.host_has_avx2_fma()  # generic code: no tiles


def test_fused_multiply_add_rounds_once():
    """(1 + 2^-23) * (1 - 2^-23) = 1 - 2^-46: a fused multiply-add minus 1 keeps the -2^-46, two roundings lose it."""
    a = np.full(16, 1 + 2.0**-23, dtype=np.float32)
    b = np.full(16, 1 - 2.0**-23, dtype=np.float32)
    c = np.full(16, -1.0, dtype=np.float32)
    out = np.zeros(16, dtype=np.float32)

    @numba.njit(cache=False)
    def fma16(a, b, c, out):
        simd.vstore(out, 0, simd.vfma(simd.vload(a, 0), simd.vload(b, 0), simd.vload(c, 0)))

    fma16(a, b, c, out)
    if numba.config.DISABLE_JIT:
        assert (out == 0).all()  # the Python version rounds twice
    else:
        assert (out == np.float32(-(2.0**-46))).all()


@numba.njit(cache=False)
def _row_totals(rows, out):
    """out[r] = sum of rows[r, :] for 16 rows of 16, by four rounds of vpairsum (as the weight-gradient tile)."""
    p0 = simd.vpairsum(simd.vload(rows[0], 0), simd.vload(rows[1], 0))
    p1 = simd.vpairsum(simd.vload(rows[2], 0), simd.vload(rows[3], 0))
    p2 = simd.vpairsum(simd.vload(rows[4], 0), simd.vload(rows[5], 0))
    p3 = simd.vpairsum(simd.vload(rows[6], 0), simd.vload(rows[7], 0))
    p4 = simd.vpairsum(simd.vload(rows[8], 0), simd.vload(rows[9], 0))
    p5 = simd.vpairsum(simd.vload(rows[10], 0), simd.vload(rows[11], 0))
    p6 = simd.vpairsum(simd.vload(rows[12], 0), simd.vload(rows[13], 0))
    p7 = simd.vpairsum(simd.vload(rows[14], 0), simd.vload(rows[15], 0))
    q0 = simd.vpairsum(p0, p1)
    q1 = simd.vpairsum(p2, p3)
    q2 = simd.vpairsum(p4, p5)
    q3 = simd.vpairsum(p6, p7)
    simd.vstore(out, 0, simd.vpairsum(simd.vpairsum(q0, q1), simd.vpairsum(q2, q3)))


def test_pairsum_known_answer_compiled_and_in_python():
    a = np.arange(16, dtype=np.float32)
    b = np.arange(100, 116, dtype=np.float32)
    want = np.array([1, 5, 9, 13, 17, 21, 25, 29, 201, 205, 209, 213, 217, 221, 225, 229], dtype=np.float32)
    np.testing.assert_array_equal(simd.vpairsum(a, b), want)  # the Python version

    @numba.njit(cache=False)
    def pairsum16(a, b, out):
        simd.vstore(out, 0, simd.vpairsum(simd.vload(a, 0), simd.vload(b, 0)))

    out = np.zeros(16, dtype=np.float32)
    pairsum16(a, b, out)
    np.testing.assert_array_equal(out, want)


def test_four_rounds_of_pairsum_give_each_row_total():
    rows = (np.arange(256, dtype=np.float32) % 7).reshape(16, 16) * np.arange(1, 17, dtype=np.float32)[:, None]
    out = np.zeros(16, dtype=np.float32)
    _row_totals(rows, out)
    np.testing.assert_array_equal(out, rows.sum(axis=1))  # small integers: exact in any order


@pytest.mark.parametrize("n", [0, 5, 16, 32, 47, 100])
def test_lane_sum_known_answers_and_non_finite(n):
    lanes = np.empty(16, dtype=np.float32)
    a = np.arange(3 + n + 3, dtype=np.float32)
    assert CT._lane_sum(a, 3, n, np.float32(1.0), lanes) == np.arange(3, 3 + n).sum()  # integers: exact
    assert CT._lane_sum(a, 3, n, np.float32(0.0), lanes) == 0.0
    if n:
        for bad in (np.inf, -np.inf, np.nan):
            b = a.copy()
            b[3 + n - 1] = bad
            assert np.isnan(CT._lane_sum(b, 3, n, np.float32(0.0), lanes))
        b = a.copy()
        b[2] = b[3 + n] = np.nan  # just outside the range: not read
        assert CT._lane_sum(b, 3, n, np.float32(0.0), lanes) == 0.0


def _pad_phases_model(x_n, c0, Cg, ph, pw, sh, sw, Hph, Wph):
    """NumPy: zero-pad channels c0 .. c0+Cg-1, cut to (Hph*sh, Wph*sw), split into the sh*sw phase planes."""
    C, H, W = x_n.shape
    big = np.zeros((Cg, max(Hph * sh, H + ph), max(Wph * sw, W + pw)), dtype=x_n.dtype)
    big[:, ph : ph + H, pw : pw + W] = x_n[c0 : c0 + Cg]
    big = big[:, : Hph * sh, : Wph * sw]
    return np.stack([big[:, a::sh, b::sw] for a in range(sh) for b in range(sw)], axis=1).ravel()


@pytest.mark.parametrize(
    "C, H, W, ph, pw, sh, sw, cut",
    [
        (3, 8, 8, 1, 1, 1, 1, 0),
        (4, 16, 16, 1, 1, 2, 2, 0),
        (2, 7, 9, 2, 0, 2, 3, 0),
        (3, 32, 40, 1, 2, 1, 1, 0),
        (2, 33, 31, 1, 1, 2, 2, 0),
        (2, 9, 9, 0, 0, 2, 2, 1),  # the last input row and column are read by no output: skipped
        (2, 9, 11, 1, 1, 2, 3, 1),
        (2, 40, 33, 0, 0, 2, 2, 1),
        (2, 5, 70, 1, 3, 2, 2, 0),  # stride 2, rows of 70: two whole steps of 32 numbers and a masked end
        (2, 40, 45, 2, 2, 1, 2, 0),  # long rows, the even columns to phase 0
        (3, 6, 1, 0, 1, 2, 2, 0),  # rows of one number
        (2, 12, 17, 1, 0, 2, 2, 2),
    ],
)
def test_pad_phases_against_a_numpy_model(C, H, W, ph, pw, sh, sw, cut):
    """Every copy order (channels innermost for planes under 4 KiB, both column phases at once for stride 2,
    channel by channel above), including inputs cut short where no output reads them."""
    from catlab._kernels.conv import _pad_phases

    rng = np.random.default_rng(C * H + W)
    x_n = rng.standard_normal((C + 2, H, W)).astype(np.float32)
    Hph, Wph = -(-(H + 2 * ph) // sh) - cut, -(-(W + 2 * pw) // sw) - cut
    xp = np.zeros(C * sh * sw * Hph * Wph, dtype=np.float32)
    _pad_phases(x_n, 1, ph, pw, sh, sw, Hph, Wph, xp)
    np.testing.assert_array_equal(xp, _pad_phases_model(x_n, 1, C, ph, pw, sh, sw, Hph, Wph))


@pytest.mark.parametrize("C, H, W, pw", [(3, 8, 8, 1), (2, 33, 40, 3)])
def test_pad_phases_float64_at_stride_2(C, H, W, pw):
    """float64 (the BLAS kernels' other dtype) takes split_pairs's plain loop: the same planes."""
    from catlab._kernels.conv import _pad_phases

    x_n = np.random.default_rng(W).standard_normal((C, H, W))
    Hph, Wph = -(-(H + 2) // 2), -(-(W + 2 * pw) // 2)
    xp = np.zeros(C * 4 * Hph * Wph)
    _pad_phases(x_n, 0, 1, pw, 2, 2, Hph, Wph, xp)
    np.testing.assert_array_equal(xp, _pad_phases_model(x_n, 0, C, 1, pw, 2, 2, Hph, Wph))


def test_copy_row_copies_exactly_n_numbers():
    """copy_row compiled (16 numbers a step, the last one masked), on float64 (a plain loop) and in Python:
    dst[:n] = src[:n], nothing past n written or read (a NaN there stays out)."""

    @numba.njit(cache=False)
    def copy(src, n, dst):
        simd.copy_row(src, n, dst)

    rng = np.random.default_rng(6)
    for fn in (copy, simd.copy_row):
        for dtype in (np.float32, np.float64):
            for n in (0, 1, 8, 15, 16, 17, 31, 32, 33, 50):
                src = np.full(n + 20, np.nan, dtype=dtype)
                src[:n] = rng.standard_normal(n)
                dst = np.full(n + 20, 7.0, dtype=dtype)
                fn(src, n, dst[3:])
                np.testing.assert_array_equal(dst[3 : 3 + n], src[:n])
                assert (dst[:3] == 7.0).all() and (dst[3 + n :] == 7.0).all(), (n, dtype)
    with pytest.raises(IndexError, match="copy_row"):
        simd.copy_row(np.zeros(8, np.float32), 9, np.zeros(9, np.float32))


def test_split_pairs_into_even_and_odd_numbers():
    """split_pairs compiled (vector steps of 32, masked ends) and in Python: even[:ne] = src[0:n:2][:ne],
    odd[:no] = src[1:n:2][:no], nothing else written, nothing of src past n read (a NaN there stays out)."""

    @numba.njit(cache=False)
    def split(src, n, even, ne, odd, no):
        simd.split_pairs(src, n, even, ne, odd, no)

    rng = np.random.default_rng(5)
    for fn in (split, simd.split_pairs):
        for n in (0, 1, 2, 15, 16, 17, 31, 32, 33, 64, 70):
            src = np.full(n + 40, np.nan, dtype=np.float32)
            src[:n] = rng.standard_normal(n)
            for ne, no in [((n + 1) // 2, n // 2), (max(0, (n + 1) // 2 - 3), n // 2), (0, 0)]:
                even = np.full(60, 7.0, dtype=np.float32)
                odd = np.full(60, 7.0, dtype=np.float32)
                fn(src, n, even, ne, odd, no)
                np.testing.assert_array_equal(even[:ne], src[0:n:2][:ne])
                np.testing.assert_array_equal(odd[:no], src[1:n:2][:no])
                assert (even[ne:] == 7.0).all() and (odd[no:] == 7.0).all(), (n, ne, no)
    with pytest.raises(IndexError, match="split_pairs"):
        simd.split_pairs(np.zeros(8, np.float32), 8, np.zeros(8, np.float32), 5, np.zeros(8, np.float32), 4)
    assert simd._MASKED_STORE.startswith("llvm.masked.store.v16f32")


def test_compiled_vector_loads_are_bounds_checked_under_numba_boundscheck(tmp_path):
    code = (
        "import numba, numpy as np\n"
        "from catlab._kernels import simd\n"
        "@numba.njit\n"
        "def f(a, i, out):\n    simd.vstore(out, 0, simd.vload(a, i))\n"
        "a, out = np.zeros(20, np.float32), np.zeros(16, np.float32)\n"
        "f(a, 4, out)\n"
        "try:\n    f(a, 5, out)\nexcept IndexError as e:\n    print('IndexError', e)\n"
        "@numba.njit\n"
        "def g(a, i, out):\n    simd.vstore(out, 0, simd.vbcast(a, i))\n"
        "g(a, 19, out)\n"
        "try:\n    g(a, 20, out)\nexcept IndexError as e:\n    print('IndexError', e)\n"
        "@numba.njit\n"
        "def h(a, ne, e, o):\n    simd.split_pairs(a, 20, e, ne, o, 10)\n"
        "e, o = np.zeros(10, np.float32), np.zeros(10, np.float32)\n"
        "h(a, 10, e, o)\n"
        "try:\n    h(a, 11, e, o)\nexcept IndexError as e:\n    print('IndexError', e)\n"
        "@numba.njit\n"
        "def k(a, n, out):\n    simd.copy_row(a, n, out)\n"
        "k(a, 16, out)\n"
        "try:\n    k(a, 17, out)\nexcept IndexError as e:\n    print('IndexError', e)\n"
    )
    env = dict(os.environ, NUMBA_BOUNDSCHECK="1", NUMBA_CACHE_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    lines = out.stdout.splitlines()
    assert len(lines) == 4 and all(line.startswith("IndexError") for line in lines), out.stdout + out.stderr
    assert "16 lanes" in lines[0] and "broadcast" in lines[1] and "split_pairs" in lines[2]
    assert "copy_row" in lines[3]


# --- the tiled forward ----------------------------------------------------------------------------

# N, C, H, W, K, R, S, stride, padding, dilation, groups
TILED = [
    (2, 3, 9, 8, 5, 3, 3, 1, 1, 1, 1),  # 5 filters: one block of 4 and one of 4 with 3 zero filters
    (1, 16, 16, 16, 20, 5, 5, 1, 2, 1, 1),  # 20 filters: blocks of 4; one sample split among threads
    (3, 6, 14, 14, 16, 5, 5, 1, 0, 1, 1),  # blocks of 8
    (2, 4, 11, 13, 6, 3, 2, (2, 1), (1, 0), (1, 2), 2),  # stride phases, dilation, groups
    (2, 5, 12, 9, 9, 3, 3, 2, 1, 1, 1),  # stride 2 both ways
    (1, 8, 7, 7, 12, 1, 1, 1, 1, 1, 1),  # 1x1 with padding (without, it is a plain product: BLAS)
    (2, 8, 3, 3, 9, 3, 3, 1, 1, 1, 1),  # a plane smaller than one tile
    (2, 6, 10, 10, 16, 4, 4, 1, "same", 1, 1),  # even kernel: asymmetric padding
    (1, 2, 5, 40, 1, 2, 3, 1, (0, 1), (2, 1), 1),  # one filter, wide rows longer than a block
    (2, 3, 30, 30, 8, 5, 5, 1, 2, 2, 1),  # several blocks of 512 positions
]


def _case(cfg, seed=0):
    N, C, H, W, Kf, R, S, stride, padding, dilation, groups = cfg
    r = np.random.default_rng(seed)
    x = r.normal(size=(N, C, H, W)).astype(np.float32)
    w = r.normal(size=(Kf, C // groups, R, S)).astype(np.float32)
    b = r.normal(size=Kf).astype(np.float32)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    s2 = stride if isinstance(stride, tuple) else (stride, stride)
    d2 = dilation if isinstance(dilation, tuple) else (dilation, dilation)
    pad = ref.pad_edges(padding, (R, S), d2)
    return x, w, b, kw, (s2, pad, d2, groups)


@functools.cache
def _ref_forward(cfg, seed):
    """The float64 reference loops' output for ``_case(cfg, seed)``, computed once: every tile family and
    thread count is compared with the same loops' result (they are the slow part of these tests)."""
    x, w, b, _, (s2, pad, d2, groups) = _case(cfg, seed)
    y = ref.conv2d(x, w, b, s2, pad, d2, groups)
    y.setflags(write=False)  # shared by the tests that read it
    return y


@functools.cache
def _ref_backward(cfg, seed, dy_seed, dy_shape):
    """(dx, dweight, dbias) of the reference loops for ``_case(cfg, seed)`` and dy drawn with ``dy_seed``."""
    x, w, b, _, (s2, pad, d2, groups) = _case(cfg, seed)
    dy = np.random.default_rng(dy_seed).normal(size=dy_shape).astype(np.float32)
    grads = ref.conv2d_backward(dy, x, w, s2, pad, d2, groups)
    for g in grads:
        g.setflags(write=False)  # shared by the tests that read them
    return grads


@pytest.fixture(params=[True, False], ids=["avx512-tiles", "avx2-tiles"])
def registers(request, monkeypatch):
    """Both families of tiles whatever this CPU is: 8 or 4 filters by 32 or 64 positions and 4-by-4 gradient
    tiles (AVX-512), or 6 by 16 and 2-by-3 gradient tiles (AVX2); each is correct anywhere, fast on its CPU."""
    monkeypatch.setattr(paths, "WIDE_REGISTERS", request.param)
    monkeypatch.setattr(paths, "CPU_NAME", "skylake-avx512")  # not Zen 4's choices (test_..._per_cpu)
    return request.param


@pytest.fixture
def tiled_forced(monkeypatch, registers):
    """Take the tiled kernels whatever this CPU is (they are correct anywhere; fast with AVX-512 or AVX2) and size."""
    monkeypatch.setattr(paths, "TILED", True)
    monkeypatch.setattr(paths, "TILED_MIN_WORK", 0)


@pytest.fixture
def tiled_on(monkeypatch, registers):
    """As ``tiled_forced``, and record each call of the tiled forward kernel from Python.

    Only for tests that keep the chunks off Numba's threads: a ``prange`` wrapper compiled
    while the spy is in place would try to call it from compiled code."""
    monkeypatch.setattr(paths, "TILED", True)
    monkeypatch.setattr(paths, "TILED_MIN_WORK", 0)
    taken = []
    for name in ("conv2d_tiled_forward", "conv2d_ftiled_forward"):  # tiles across positions or filters
        real = getattr(CT, name)
        monkeypatch.setattr(CT, name, lambda *a, _real=real: (taken.append(1), _real(*a))[1])
    return taken


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("cfg", TILED)
def test_tiled_forward_matches_reference(cfg, threads, tiled_on, thread_backend, monkeypatch):
    x, w, b, kw, (s2, pad, d2, groups) = _case(cfg)
    x_before, w_before = x.copy(), w.copy()
    monkeypatch.setattr(TH, "num_threads", lambda: threads)
    monkeypatch.setattr(TH, "numba_parallel", lambda n_chunks: False)  # chunks on the pool, seen by the spy
    y = F.conv2d(x, w, b, **kw)
    assert tiled_on, "the tiled kernel did not run"
    want = _ref_forward(cfg, 0)
    assert y.dtype == np.float32 and y.shape == want.shape
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=2e-5 * np.abs(want).max())
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(w, w_before)


# the backward takes stride 1 (any dilation) or dilation 1 (any stride); also padding beyond the kernel's extent
BACKWARD = [c for c in TILED if c[7] == 1 or c[9] == 1] + [
    (2, 6, 10, 10, 16, 3, 3, 1, 3, 1, 1),  # padding 3 > 3 - 1: dy cropped
    (1, 3, 20, 21, 16, 7, 7, 2, 3, 1, 1),  # 7x7 stride 2: four stride phases of dx
    (2, 4, 13, 11, 6, 3, 2, (3, 2), (2, 1), 1, 2),  # stride 3: a row phase whose first row is not row 0; groups
]


@pytest.fixture
def tiled_backward_on(monkeypatch, registers):
    """As ``tiled_on``, for the backward pass: records the filters per tile (FB) of each tiled weight-gradient
    kernel that ``catlab._threads.run_kernel`` runs: alone, into one sample's rows, or in a pair with the
    input gradient. It spies on ``run_kernel``, not on the kernel: the pairs call the weight gradient from
    compiled code, and a pair compiled while a Python spy stood in the kernel's place would fail, and Numba
    keeps a failed compilation for those argument types for the rest of the process."""
    monkeypatch.setattr(paths, "TILED", True)
    monkeypatch.setattr(paths, "TILED_MIN_WORK", 0)
    taken = []
    fb_at = {  # where FB is among the kernel's leading arguments
        "conv2d_tiled_weight_grad": 12,
        "_weight_grad_rows": 12,
        "conv2d_tiled_backward_pair": 10,
        "conv2d_tiled_backward_pair_strided": 10,
    }
    real = TH.run_kernel

    def spy(kernel, parallel, items, n_chunks, before=(), *args, **kwargs):
        name = getattr(getattr(kernel, "py_func", kernel), "__name__", "")
        if name in fb_at:
            taken.append(before[fb_at[name]])
        return real(kernel, parallel, items, n_chunks, before, *args, **kwargs)

    monkeypatch.setattr(TH, "run_kernel", spy)
    return taken


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("cfg", BACKWARD)
def test_tiled_backward_matches_reference(cfg, threads, tiled_backward_on, thread_backend, monkeypatch):
    """dx (a tiled forward pass of dy with the flipped filters), dweight and dbias (tiled sums) by the loops."""
    x, w, b, kw, (s2, pad, d2, groups) = _case(cfg, seed=2)
    monkeypatch.setattr(TH, "num_threads", lambda: threads)
    monkeypatch.setattr(TH, "numba_parallel", lambda n_chunks: False)  # chunks on the pool, seen by the spy
    y = F.conv2d(x, w, b, **kw)
    dy = np.random.default_rng(3).normal(size=y.shape).astype(np.float32)
    inputs = [a.copy() for a in (dy, x, w)]
    dx, dw, db = F.conv2d_backward(dy, x, w, **kw)
    assert tiled_backward_on, "the tiled weight gradient did not run"
    Kg = w.shape[0] // groups
    assert set(tiled_backward_on) == {paths.grad_block(Kg)}
    want = _ref_backward(cfg, 2, 3, y.shape)  # for this same dy
    for got, exp, name in zip((dx, dw, db), want, ("dx", "dweight", "dbias")):
        assert got.dtype == np.float32 and got.shape == exp.shape, name
        np.testing.assert_allclose(got, exp, rtol=1e-4, atol=2e-5 * np.abs(exp).max(), err_msg=name)
    for a, before in zip((dy, x, w), inputs):
        np.testing.assert_array_equal(a, before)


@pytest.mark.parametrize(
    "N, C, H, W, K, R, S, stride, padding, groups",
    [
        (2, 5, 12, 9, 8, 3, 3, (2, 2), (1, 1), 1),  # four phases: 2x2, 2x1, 1x2, 1x1 sub-kernels
        (1, 4, 13, 11, 6, 3, 2, (3, 2), (2, 1), 2),  # a row phase starting at row 1; groups
        (2, 3, 9, 10, 4, 1, 3, (2, 2), (0, 1), 1),  # 1-row kernel, stride 2: row phase 1 meets no tap (zeros)
        (1, 6, 16, 16, 20, 5, 5, (2, 2), (2, 2), 1),  # 6 dx channels: one block of 8, rows past the last
        (1, 40, 10, 10, 8, 3, 3, (2, 2), (1, 1), 1),  # 40 dx channels: 3 vectors of 16, split in parts
    ],
)
@pytest.mark.parametrize("kind", ["positions", "filters"])
def test_strided_input_gradient_one_kernel_for_every_phase(
    N, C, H, W, K, R, S, stride, padding, groups, kind, registers, monkeypatch
):
    """dx for a stride > 1 by conv2d_tiled_input_grad or conv2d_ftiled_input_grad (one padded dy for all
    phases; phases no tap reaches are zero), in one chunk, one per item and in parts of the channels,
    against the loops."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((K, C // groups, R, S)).astype(np.float32)
    P = (H + 2 * padding[0] - R) // stride[0] + 1
    Q = (W + 2 * padding[1] - S) // stride[1] + 1
    dy = rng.standard_normal((N, K, P, Q)).astype(np.float32)
    calls = []
    name = "conv2d_tiled_input_grad" if kind == "positions" else "conv2d_ftiled_input_grad"
    real = getattr(CT, name)
    monkeypatch.setattr(TH, "numba_parallel", lambda n_chunks: False)  # chunks on the pool, seen by the spy
    monkeypatch.setattr(CT, name, lambda *a: (calls.append(a[-3:-1]), real(*a))[1])
    monkeypatch.setattr(paths, "_strided_kind", lambda *a: kind)
    geo = paths.Geometry(*stride, *padding, 1, 1, P, Q)
    for threads in (1, N * groups, N * groups + 1):  # the last: fewer items than threads, parts of the channels
        calls.clear()
        dx = paths.input_grad_tiled(dy, w, groups, geo, H, W, threads)
        assert calls, f"the one-kernel strided input gradient ({kind}) did not run"
        assert calls[0][0] == 0 and all(c0[1] == c1[0] for c0, c1 in zip(calls, calls[1:]))  # every item once
        pad = ((padding[0], padding[0]), (padding[1], padding[1]))
        want = ref.conv2d_backward(dy, x, w, stride, pad, (1, 1), groups)[0]
        np.testing.assert_allclose(dx, want, rtol=1e-4, atol=2e-5 * np.abs(want).max())
    # the same shapes with other filters and dy: the phases' layout comes from the cache, the filters do not
    w2, dy2 = np.ascontiguousarray(-2 * w[::-1]), np.ascontiguousarray(dy[:, ::-1])
    hits = paths._input_grad_layout.cache_info().hits
    dx2 = paths.input_grad_tiled(dy2, w2, groups, geo, H, W, 1)
    assert paths._input_grad_layout.cache_info().hits == hits + 1
    want2 = ref.conv2d_backward(dy2, x, w2, stride, pad, (1, 1), groups)[0]
    np.testing.assert_allclose(dx2, want2, rtol=1e-4, atol=2e-5 * np.abs(want2).max())


@pytest.mark.parametrize("cpu", ["skylake-avx512", "znver4"])
def test_strided_input_gradient_kind_choice(registers, cpu, monkeypatch):
    """Without AVX-512: vectors across dx channels where 16 or more channels fill them (an 8x8 phase of a
    stride-2 3x3 layer computes 80 wide positions for 64 kept), across positions for 3 channels. With
    AVX-512 on Intel the tiles across filters run at 0.55 of the others' speed (FILTER_TILES_SPEED):
    positions; on AMD Zen 4 at 0.89 (FILTER_TILES_SPEED_ZEN4): as without AVX-512."""
    monkeypatch.setattr(paths, "CPU_NAME", cpu)
    for Cg, R, pad, H, avx2 in [(32, 3, 1, 16, "filters"), (64, 3, 1, 32, "filters"), (3, 7, 3, 32, "positions")]:
        P = (H + 2 * pad - R) // 2 + 1
        phases, _, _, Wd, *_ = paths._input_grad_layout(16, Cg, R, R, 1, 2, 2, pad, pad, H, H, P, P)
        expected = "positions" if registers and cpu != "znver4" else avx2
        assert paths.input_grad_kind(Cg, phases, Wd) == expected, (Cg, R, H)


def test_tiled_backward_path_choice(monkeypatch):
    monkeypatch.setattr(paths, "TILED", True)
    geo = paths.Geometry(1, 1, 1, 1, 1, 1, 32, 32)
    assert paths.use_tiled_backward(np.dtype(np.float32), 3, 3, geo)
    assert paths.use_tiled_backward(np.dtype(np.float32), 3, 3, paths.Geometry(2, 2, 1, 1, 1, 1, 16, 16))
    # stride and dilation together: the older kernels
    assert not paths.use_tiled_backward(np.dtype(np.float32), 3, 3, paths.Geometry(2, 2, 1, 1, 2, 2, 16, 16))
    assert not paths.use_tiled_backward(np.dtype(np.float64), 3, 3, geo)


@pytest.mark.parametrize("cfg", [TILED[1], TILED[3], TILED[9]])
def test_tiled_forward_is_the_same_for_any_chunking(cfg, tiled_forced, thread_backend, monkeypatch):
    """Every output is one sum in one fixed order, so the chunks (by samples or by filter blocks) change no bit."""
    x, w, b, kw, _ = _case(cfg)
    monkeypatch.setattr(TH, "num_threads", lambda: 1)
    one = F.conv2d(x, w, b, **kw)
    monkeypatch.setattr(TH, "num_threads", lambda: 3)
    monkeypatch.setattr(TH, "chunks_for", lambda items, work, threads, min_work=0: min(items, threads))
    np.testing.assert_array_equal(F.conv2d(x, w, b, **kw), one)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("KV", [16, 32])
@pytest.mark.parametrize("cfg", TILED)
def test_filter_tiles_match_reference(cfg, KV, threads, tiled_forced, monkeypatch):
    """The kernels with vectors across filters (chosen for small images), forced on every geometry."""
    x, w, b, kw, (s2, pad, d2, groups) = _case(cfg, seed=1)
    monkeypatch.setattr(TH, "num_threads", lambda: threads)
    monkeypatch.setattr(paths, "tiled_kind", lambda Kg, R, S, geo, N=None, taps=None: ("filters", KV))
    taken = []
    real = CT.conv2d_ftiled_forward
    monkeypatch.setattr(TH, "numba_parallel", lambda n_chunks: False)  # the spy below runs on the pool only
    monkeypatch.setattr(CT, "conv2d_ftiled_forward", lambda *a: (taken.append(1), real(*a))[1])
    y = F.conv2d(x, w, b, **kw)
    assert taken, "the filter-tile kernel did not run"
    want = _ref_forward(cfg, 1)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=2e-5 * np.abs(want).max())
    monkeypatch.setattr(TH, "num_threads", lambda: 3)  # any chunking: the same bits
    monkeypatch.setattr(TH, "chunks_for", lambda items, work, threads, min_work=0: min(items, threads))
    np.testing.assert_array_equal(F.conv2d(x, w, b, **kw), y)


def test_tile_kind_choice(monkeypatch):
    """Vectors across filters where the wide rows would waste much (small images) and filters fill 32;
    without AVX-512 always 6 filters by 16 positions (the tiles across filters would spill)."""
    G = paths.Geometry
    monkeypatch.setattr(paths, "WIDE_REGISTERS", False)
    for Kg, P in ((64, 8), (64, 32), (16, 8), (32, 16)):  # 16-filter vectors filled: 6 positions by 16 filters
        assert paths.tiled_kind(Kg, 3, 3, G(1, 1, 1, 1, 1, 1, P, P)) == ("filters", 16)
        assert paths.filter_tile_positions(16) == 6
    for Kg, P in ((20, 16), (6, 28), (40, 16)):  # 20 filters fill 20 of 32 lanes: 6 filters by 16 positions
        assert paths.tiled_kind(Kg, 3, 3, G(1, 1, 1, 1, 1, 1, P, P)) == ("positions", 6)
    # small batches: the filters' packing would cost more than the tiles save
    assert paths.tiled_kind(64, 3, 3, G(1, 1, 1, 1, 1, 1, 8, 8), N=1) == ("positions", 6)
    assert paths.tiled_kind(64, 3, 3, G(1, 1, 1, 1, 1, 1, 32, 32), N=1) == ("positions", 6)
    assert paths.tiled_kind(64, 3, 3, G(1, 1, 1, 1, 1, 1, 8, 8), N=32) == ("filters", 16)
    monkeypatch.setattr(paths, "WIDE_REGISTERS", True)
    monkeypatch.setattr(paths, "CPU_NAME", "skylake-avx512")  # Intel: FILTER_TILES_SPEED
    assert paths.tiled_kind(64, 3, 3, G(1, 1, 1, 1, 1, 1, 8, 8)) == ("filters", 32)  # rows of 10 for 8 kept
    assert paths.tiled_kind(64, 3, 3, G(1, 1, 1, 1, 1, 1, 32, 32)) == ("positions", 8)  # rows of 34 for 32
    assert paths.tiled_kind(16, 3, 3, G(1, 1, 1, 1, 1, 1, 8, 8)) == ("positions", 8)  # 16-filter tiles: slower
    assert paths.tiled_kind(20, 5, 5, G(1, 1, 2, 2, 1, 1, 16, 16)) == ("positions", 4)  # 20 = 5 blocks of 4
    # with AVX-512 too, small batches keep the tiles that read the weights as they are
    assert paths.tiled_kind(64, 3, 3, G(1, 1, 1, 1, 1, 1, 8, 8), N=1) == ("positions", 8)
    assert paths.tiled_kind(64, 3, 3, G(1, 1, 1, 1, 1, 1, 8, 8), N=32) == ("filters", 32)
    monkeypatch.setattr(paths, "CPU_NAME", "znver4")  # AMD Zen 4: 16 filters per tile at 0.89, 32 at 0.75
    assert paths.tiled_kind(64, 3, 3, G(1, 1, 1, 1, 1, 1, 8, 8)) == ("filters", 16)
    assert paths.tiled_kind(16, 3, 3, G(1, 1, 1, 1, 1, 1, 8, 8)) == ("filters", 16)  # 0.89 > 64/96 kept
    assert paths.tiled_kind(64, 3, 3, G(1, 1, 1, 1, 1, 1, 32, 32)) == ("positions", 8)  # 0.94 kept > 0.89
    assert paths.tiled_kind(20, 5, 5, G(1, 1, 2, 2, 1, 1, 16, 16)) == ("positions", 4)  # 20 of 32 lanes
    assert paths.tiled_kind(64, 3, 3, G(1, 1, 1, 1, 1, 1, 8, 8), N=1) == ("positions", 8)
    # filters whose packed block fits the first-level cache (Cg*R*S <= 512 taps) at the positions' speed
    vgg = G(1, 1, 1, 1, 1, 1, 32, 32)
    assert paths.tiled_kind(64, 3, 3, vgg, taps=64 * 9) == ("positions", 8)  # 0.94 kept > 0.89
    assert paths.tiled_kind(64, 3, 3, vgg, taps=16 * 9) == ("filters", 16)  # 1.0 > 0.94
    odd = G(1, 1, 1, 1, 1, 1, 15, 15)  # wide rows of 17 in tiles of 32: 225 of 256 kept; 16 by 16: 225 of 240
    assert paths.tiled_kind(32, 3, 3, odd, taps=16 * 9) == ("filters", 16)
    assert paths.tiled_kind(32, 3, 3, odd, taps=64 * 9) == ("positions", 8)  # 0.89 * 225/240 < 225/256
    assert paths.tiled_kind(20, 5, 5, G(1, 1, 2, 2, 1, 1, 16, 16), taps=16 * 25) == ("positions", 4)
    monkeypatch.setattr(paths, "CPU_NAME", "skylake-avx512")  # Intel: the taps change nothing
    assert paths.tiled_kind(32, 3, 3, odd, taps=16 * 9) == paths.tiled_kind(32, 3, 3, odd) == ("positions", 8)


def test_filter_tiles_speed_per_cpu(monkeypatch):
    """The speed of the tiles across filters: one for AVX2, per filters per tile with AVX-512, Zen 4's own."""
    monkeypatch.setattr(paths, "WIDE_REGISTERS", False)
    assert paths.filter_tiles_speed(16) == paths.FILTER_TILES_SPEED_AVX2
    monkeypatch.setattr(paths, "WIDE_REGISTERS", True)
    for cpu, table in [("skylake-avx512", paths.FILTER_TILES_SPEED), ("znver4", paths.FILTER_TILES_SPEED_ZEN4)]:
        monkeypatch.setattr(paths, "CPU_NAME", cpu)
        assert [paths.filter_tiles_speed(kv) for kv in (16, 32)] == [table[16], table[32]]
    assert paths.FILTER_TILES_SPEED[16] < paths.FILTER_TILES_SPEED[32]  # Intel: 32 per tile
    assert paths.FILTER_TILES_SPEED_ZEN4[16] > paths.FILTER_TILES_SPEED_ZEN4[32]  # Zen 4: 16 per tile
    # Zen 4, 16 filters whose packed weights fit the first-level cache: their own speed
    for taps, want in [(512, paths.FILTER_TILES_SPEED_ZEN4_L1), (513, paths.FILTER_TILES_SPEED_ZEN4[16])]:
        assert paths.filter_tiles_speed(16, taps) == want
    assert paths.filter_tiles_speed(32, 9) == paths.FILTER_TILES_SPEED_ZEN4[32]
    assert paths.FILTER_TILES_SPEED_ZEN4_L1 > paths.FILTER_TILES_SPEED_ZEN4[16]
    monkeypatch.setattr(paths, "CPU_NAME", "skylake-avx512")
    assert paths.filter_tiles_speed(16, 9) == paths.FILTER_TILES_SPEED[16]


@pytest.mark.parametrize("KB", [4, 6, 8])
def test_tiled_kernel_called_directly_with_every_block_size(KB):
    """The kernel with a forced block size (F.conv2d picks one by the filter count) against the reference."""
    x, w, b, kw, (s2, pad, d2, groups) = _case((2, 5, 9, 11, 11, 3, 3, 1, 1, 1, 1), seed=3)
    P, Q = 9, 11
    y4 = np.empty((2, 1, 11, P * Q), dtype=np.float32)
    want = ref.conv2d(x, w, b, s2, pad, d2, groups)
    # 11 filters: the last block reads rows past the last filter (as the last) and drops them
    CT.conv2d_tiled_forward(x, w.reshape(1, 11, 5 * 9), b, 3, 3, 1, 1, 1, 1, 1, 1, P, Q, KB, 1, 0, 2, y4)
    np.testing.assert_allclose(y4.reshape(want.shape), want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    KV = 16  # and the tiles across filters, with the filters packed tap by tap
    wpk = paths.pack_filters(w, 1, KV)
    assert wpk.shape == (1, 1, 5 * 9, KV)
    for PT in (CT.FTILE_16, CT.FTILE_6):  # 16 positions (AVX-512) or 6 (AVX2) per tile
        y4[:] = np.nan
        CT.conv2d_ftiled_forward(x, wpk, b, 3, 3, 1, 1, 1, 1, 1, 1, P, Q, PT, 1, 0, 2, y4)
        np.testing.assert_allclose(y4.reshape(want.shape), want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize("K", range(1, 14))
def test_avx2_tiles_of_the_last_filters(K):
    """With 6 filters a tile (AVX2), the last block of a group takes a tile of 2 or 4 filters (2 filters: 32
    positions a tile, a last 16 by the tile of 4): every remainder 0-5 of 1-13 filters, against the loops, on
    a 22x22 output whose 528 wide positions make a second block of one 16-position tile."""
    x, w, b, kw, (s2, pad, d2, groups) = _case((2, 3, 22, 22, K, 3, 3, 1, 1, 1, 1), seed=K)
    P = Q = 22
    want = ref.conv2d(x, w, b, s2, pad, d2, groups)
    y4 = np.full((2, 1, K, P * Q), np.nan, dtype=np.float32)
    CT.conv2d_tiled_forward(x, w.reshape(1, K, 27), b, 3, 3, 1, 1, 1, 1, 1, 1, P, Q, 6, 1, 0, 2, y4)
    np.testing.assert_allclose(y4.reshape(want.shape), want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize("parts", [2, 3, 7, 40, 150])
def test_forward_parts_split_the_work(parts):
    """Fewer samples than threads: each sample's items are parts of its work, for the tiles across positions
    ranges of its units (blocks of positions, then blocks of filters, then tiles: 13 filters are tiles of 6,
    6 and 2, and 22x22 wide positions 33 tiles of 16 in blocks of 32 and 1, so cuts fall inside blocks and
    inside filter blocks; 150 parts: more than the 99 units, some parts empty), for the tiles across filters
    ranges of the tiles of positions. Each item called on its own (as the threads would) into one output,
    against the loops."""
    x, w, b, kw, (s2, pad, d2, groups) = _case((2, 3, 22, 22, 13, 3, 3, 1, 1, 1, 1), seed=7)
    P = Q = 22
    want = ref.conv2d(x, w, b, s2, pad, d2, groups)
    wpk = paths.pack_filters(w, 1, 16)
    for kind in ("positions", "filters"):
        y4 = np.full((2, 1, 13, P * Q), np.nan, dtype=np.float32)
        for it in range(2 * parts):  # items (n, part) are it = n * parts + part
            if kind == "positions":
                CT.conv2d_tiled_forward(
                    x, w.reshape(1, 13, 27), b, 3, 3, 1, 1, 1, 1, 1, 1, P, Q, 6, parts, it, it + 1, y4
                )
            else:
                CT.conv2d_ftiled_forward(x, wpk, b, 3, 3, 1, 1, 1, 1, 1, 1, P, Q, CT.FTILE_6, parts, it, it + 1, y4)
        np.testing.assert_allclose(
            y4.reshape(want.shape), want, rtol=1e-5, atol=1e-5 * np.abs(want).max(), err_msg=kind
        )


@pytest.mark.parametrize("RS", [(3, 3), (3, 2)])
@pytest.mark.parametrize("groups", [1, 2])
def test_flipped_filters_and_finiteness(groups, RS):
    """The stride-1 input gradient's filters (transposed per group, flipped; 3x3 by their own copy), and
    the weights' finiteness check."""
    w = np.random.default_rng(3).normal(size=(6, 4, *RS)).astype(np.float32)
    wt = paths.flipped_filters(w, groups)
    assert wt.shape == (4 * groups, 6 // groups, *RS) and wt.flags.c_contiguous
    for k in range(6):
        g, kk = divmod(k, 6 // groups)
        for c in range(4):  # the group's channels: weight.shape[1]
            np.testing.assert_array_equal(wt[g * 4 + c, kk], w[k, c, ::-1, ::-1])
    assert CT.all_finite(w.reshape(-1))
    for value in (np.inf, -np.inf, np.nan):
        w2 = w.copy()
        w2[5, 3, 2, 1] = value
        assert not CT.all_finite(w2.reshape(-1))


def test_weight_grad_of_one_sample_in_rows():
    """One sample on Numba's threads: chunks of (group, part) items add into the same dweight and db (their
    rows are distinct), every count of chunks, against the loops."""
    x, w, b, kw, (s2, pad, d2, groups) = _case((1, 6, 9, 8, 40, 2, 3, 1, 1, 1, 2), seed=8)
    P, Q = 10, 8
    dy = np.random.default_rng(9).normal(size=(1, 40, P, Q)).astype(np.float32)
    _, dw_want, db_want = ref.conv2d_backward(dy, x, w, s2, pad, d2, groups)
    for FB in (2, 4, 16):
        parts = -(-20 // FB)  # every block of filters a part of its own
        for n in (1, 2, 3, 2 * parts):
            dw = np.zeros((2, 20, 18), dtype=np.float32)
            db = np.zeros(40, dtype=np.float32)
            fin = np.zeros((n, 1), dtype=np.float32)
            PAR.conv2d_tiled_weight_grad_rows(n, 2 * parts, x, dy, 2, 3, 1, 1, 1, 1, 1, 1, P, Q, FB, parts, dw, db, fin)
            tol = 1e-4 * np.abs(dw_want).max()
            np.testing.assert_allclose(dw.reshape(w.shape), dw_want, rtol=1e-4, atol=tol, err_msg=f"FB={FB} n={n}")
            np.testing.assert_allclose(db, db_want, rtol=1e-4, atol=1e-4 * np.abs(db_want).max())
            assert np.all(fin == 0)


# one sample: N, C, H, W, K, R, S, stride, padding, dilation, groups
PAIR = [
    (1, 16, 8, 8, 16, 3, 3, 1, 1, 1, 1),
    (1, 6, 9, 11, 10, 5, 3, 1, (2, 1), (1, 2), 2),  # groups, dilation, rectangular kernel
    (1, 4, 10, 10, 7, 3, 3, 1, 3, 1, 1),  # padding beyond the kernel's extent: dy cropped
    (1, 8, 12, 11, 12, 3, 3, 2, 1, 1, 1),  # stride 2: every phase of dx by the strided kernel
    (1, 4, 13, 11, 6, 3, 2, (3, 2), (2, 1), 1, 2),  # unequal strides, groups
    (1, 40, 10, 10, 8, 3, 3, 2, 1, 1, 1),  # 40 dx channels: vectors of 16 where the tiles go across them
]


@pytest.mark.parametrize("dx_kind", [None, "positions", "filters"])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("cfg", PAIR)
def test_backward_pair_of_one_sample(cfg, threads, dx_kind, registers, thread_backend, monkeypatch):
    """One sample on two threads: the weight gradient and the input gradient as two whole kernels at once
    (in one chunk too), against the loops; the pair is taken where a stride-1 input gradient tiles
    positions, and for every stride > 1 with either kind of tile (``dx_kind``: forced, or chosen)."""
    if dx_kind is not None:
        monkeypatch.setattr(paths, "_strided_kind", lambda *a: dx_kind)
    monkeypatch.setattr(paths, "TILED", True)
    monkeypatch.setattr(paths, "TILED_MIN_WORK", 0)
    monkeypatch.setattr(paths, "MIN_CHUNK_WORK", 1)
    monkeypatch.setattr(TH, "num_threads", lambda: 2)
    if threads == 1:  # the pair's two items in one chunk, on the calling thread
        real = TH.run_kernel
        monkeypatch.setattr(TH, "run_kernel", lambda k, p, items, n, *a, **kw: real(k, p, items, 1, *a, **kw))
    pairs = []
    real_pair = paths._backward_pair
    monkeypatch.setattr(
        paths, "_backward_pair", lambda *a: (lambda r: (pairs.append(r is not None), r)[1])(real_pair(*a))
    )
    x, w, b, kw, (s2, pad, d2, groups) = _case(cfg, seed=11)
    y = F.conv2d(x, w, b, **kw)
    dy = np.random.default_rng(12).normal(size=y.shape).astype(np.float32)
    x_before, w_before, dy_before = x.copy(), w.copy(), dy.copy()
    dx, dw, db = F.conv2d_backward(dy, x, w, **kw)
    stride = cfg[7] if isinstance(cfg[7], tuple) else (cfg[7], cfg[7])
    # AVX2's tiles: always the pair; AVX-512 may tile the filters of a stride-1 input gradient
    assert pairs and (pairs[0] or (registers and stride == (1, 1)))
    dx_want, dw_want, db_want = ref.conv2d_backward(dy, x, w, s2, pad, d2, groups)
    for got, want in ((dx, dx_want), (dw, dw_want), (db, db_want)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    for a, before in ((x, x_before), (w, w_before), (dy, dy_before)):
        np.testing.assert_array_equal(a, before)


def test_backward_pair_falls_back_for_non_finite_input(monkeypatch):
    """An inf in x: the pair's weight gradient reports it and the other kernels give torch's result (NaN
    only where the inf meets a weight), as in the float64 reference."""
    monkeypatch.setattr(paths, "TILED", True)
    monkeypatch.setattr(paths, "TILED_MIN_WORK", 0)
    monkeypatch.setattr(paths, "MIN_CHUNK_WORK", 1)
    monkeypatch.setattr(TH, "num_threads", lambda: 2)
    x, w, b, kw, (s2, pad, d2, groups) = _case(PAIR[0], seed=13)
    x[0, 3, 4, 5] = np.inf
    dy = np.random.default_rng(14).normal(size=(1, 16, 8, 8)).astype(np.float32)
    dx, dw, db = F.conv2d_backward(dy, x, w, **kw)
    dx_want, dw_want, db_want = ref.conv2d_backward(dy, x.astype(np.float64), w, s2, pad, d2, groups)
    np.testing.assert_array_equal(np.isnan(dw), np.isnan(dw_want))
    np.testing.assert_array_equal(np.isinf(dw), np.isinf(dw_want))
    np.testing.assert_allclose(dx, dx_want, rtol=1e-4, atol=1e-4 * np.abs(dx_want).max())


def test_filters_computed_by_the_tiles_across_positions():
    """Whole blocks of 8 or 4 (AVX-512); with 6 (AVX2) a last tile of 2, 4 or 6 filters."""
    assert [paths.tiled_filters(k, 6) for k in range(1, 14)] == [2, 2, 4, 4, 6, 6, 8, 8, 10, 10, 12, 12, 14]
    assert [paths.tiled_filters(k, 8) for k in (1, 8, 9, 20)] == [8, 8, 16, 24]
    assert [paths.tiled_filters(k, 4) for k in (1, 4, 5, 20)] == [4, 4, 8, 20]


def test_backward_tests_cover_every_weight_grad_tile(monkeypatch):
    """The configurations above reach all three weight-gradient tiles (this CPU's or not)."""
    monkeypatch.setattr(paths, "CPU_NAME", "skylake-avx512")
    blocks = set()
    for wide in (True, False):
        monkeypatch.setattr(paths, "WIDE_REGISTERS", wide)
        blocks |= {paths.grad_block(c[4] // c[10]) for c in BACKWARD}
    assert blocks == {4, 2, 16}


def test_filter_block_size_pads_least(monkeypatch):
    monkeypatch.setattr(paths, "WIDE_REGISTERS", True)
    assert [paths.tiled_block(k) for k in (1, 4, 5, 6, 8, 12, 16, 20, 64)] == [4, 4, 8, 8, 8, 4, 8, 4, 8]
    monkeypatch.setattr(paths, "CPU_NAME", "skylake-avx512")
    assert {paths.grad_block(k) for k in (1, 6, 16, 64)} == {4}
    # vectors across filters where the filters fill 70% of the vectors' lanes: on Zen 4, and without AVX-512
    kgs = (1, 6, 8, 11, 12, 16, 20, 23, 32, 33, 64)
    fills = [False, False, False, False, True, True, False, True, True, False, True]
    monkeypatch.setattr(paths, "CPU_NAME", "znver4")
    assert [paths.grad_block(k) for k in kgs] == [16 if f else 4 for f in fills]
    monkeypatch.setattr(paths, "WIDE_REGISTERS", False)  # AVX2: 16 registers of 8 floats
    assert {paths.tiled_block(k) for k in (1, 4, 5, 6, 8, 12, 16, 20, 64)} == {6}
    assert [paths.grad_block(k) for k in kgs] == [16 if f else 2 for f in fills]


@pytest.mark.parametrize("K", [7, 33])
@pytest.mark.parametrize("FB", [4, 2, 16])
def test_weight_grad_tiles_called_directly(FB, K):
    """Every weight-gradient tile (4 filters by 4 taps, 2 by 3, 16-filter vectors by 6 taps) against the
    loops: 7 or 33 filters and 5*2*3 = 30 taps fill no tile's blocks evenly; samples split over two chunks
    summed by the caller; with 33 filters the second chunk in two parts of the filter blocks."""
    x, w, b, kw, (s2, pad, d2, groups) = _case((3, 5, 9, 8, K, 2, 3, 1, 1, 1, 1), seed=4)
    P, Q = 10, 8
    dy = np.random.default_rng(5).normal(size=(3, K, P, Q)).astype(np.float32)
    dwt = np.zeros((3, 1, K, 30), dtype=np.float32)
    dbt = np.zeros((3, K), dtype=np.float32)
    fin = np.zeros((3, 1), dtype=np.float32)
    CT.conv2d_tiled_weight_grad(x, dy, 2, 3, 1, 1, 1, 1, 1, 1, P, Q, FB, 1, 0, 2, dwt[0], dbt[0], fin[0])
    # sample 2 alone, its filters in two parts: items (sample, part) are it = part * N + n
    for c, part in ((1, 0), (2, 1)):
        it = part * 3 + 2
        CT.conv2d_tiled_weight_grad(x, dy, 2, 3, 1, 1, 1, 1, 1, 1, P, Q, FB, 2, it, it + 1, dwt[c], dbt[c], fin[c])
    _, dw_want, db_want = ref.conv2d_backward(dy, x, w, s2, pad, d2, groups)
    np.testing.assert_allclose(dwt.sum(0).reshape(w.shape), dw_want, rtol=1e-4, atol=1e-4 * np.abs(dw_want).max())
    np.testing.assert_allclose(dbt.sum(0), db_want, rtol=1e-4, atol=1e-4 * np.abs(db_want).max())
    assert np.all(fin == 0)


@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
def test_tiled_forward_propagates_inf_and_nan(value, tiled_forced):
    """A non-finite input reaches exactly the outputs whose windows hold it, as in the float64 reference."""
    x, w, b, kw, (s2, pad, d2, groups) = _case(TILED[0])
    x[1, 2, 4, 3] = value
    y = F.conv2d(x, w, b, **kw)
    want = ref.conv2d(x.astype(np.float64), w, b, s2, pad, d2, groups)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(y), np.isinf(want))
    fin = np.isfinite(want)
    np.testing.assert_allclose(y[fin], want[fin], rtol=1e-5, atol=1e-4)


def test_tiled_path_choice(monkeypatch):
    monkeypatch.setattr(paths, "TILED", True)
    geo = paths.Geometry(1, 1, 1, 1, 1, 1, 32, 32)
    assert paths.use_tiled(np.dtype(np.float32), 3, 3, geo)
    assert not paths.use_tiled(np.dtype(np.float64), 3, 3, geo)  # float64: the BLAS paths
    assert not paths.use_tiled(np.dtype(np.float32), 1, 1, paths.Geometry(2, 2, 0, 0, 1, 1, 16, 16))  # stride > kernel
    assert not paths.use_tiled(np.dtype(np.float32), 1, 1, paths.Geometry(1, 1, 0, 0, 1, 1, 16, 16))  # 1x1: BLAS
    assert paths.use_tiled(np.dtype(np.float32), 1, 1, paths.Geometry(1, 1, 1, 1, 1, 1, 18, 18))  # padded 1x1
    # a 7x7 kernel over rows of 2 outputs: the wide rows (8 long) would be 3.6 times the work
    assert not paths.use_tiled(np.dtype(np.float32), 7, 7, paths.Geometry(1, 1, 3, 3, 1, 1, 8, 2))
    # tiny layers keep the other paths in the backward pass (fewer steps per call), and in the forward pass
    # only the few-channel ones of the direct kernels
    assert not paths.use_tiled_backward(np.dtype(np.float32), 3, 3, geo, work=paths.TILED_MIN_WORK - 1)
    assert paths.use_tiled_backward(np.dtype(np.float32), 3, 3, geo, work=paths.TILED_MIN_WORK)
    assert not paths.use_tiled(np.dtype(np.float32), 3, 3, geo, few=True)
    monkeypatch.setattr(paths, "TILED", False)
    assert not paths.use_tiled(np.dtype(np.float32), 3, 3, geo)


def test_tiled_forward_matches_torch(tiled_forced):
    torch = pytest.importorskip("torch")
    for cfg in (TILED[3], TILED[4]):
        x, w, b, kw, _ = _case(cfg, seed=5)
        assert_matches_torch(
            lambda x, w, b, kw=kw: F.conv2d(x, w, b, **kw),
            lambda dy, x, w, b, kw=kw: F.conv2d_backward(dy, x, w, **kw),
            lambda x, w, b, kw=kw: torch.nn.functional.conv2d(x, w, b, **kw),
            [x, w, b],
            rtol=1e-5,
            atol=1e-5,
        )
