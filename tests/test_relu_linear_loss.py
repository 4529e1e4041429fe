"""ReLU, linear and the softmax cross-entropy loss: known answers, references, torch, gradients."""

import numpy as np
import pytest
import reference as ref
from torch_compare import assert_matches_torch

from catlab import functional as F
from catlab.gradcheck import gradcheck

TOL = 1e-6  # gradient checks, float64


def test_relu_known_answers():
    x = np.array([[-3.0, -0.0, 0.0, 2.5]], dtype=np.float32)
    np.testing.assert_array_equal(F.relu(x), [[0.0, 0.0, 0.0, 2.5]])
    np.testing.assert_array_equal(F.relu_backward(np.full_like(x, 7.0), x), [[0.0, 0.0, 0.0, 7.0]])
    assert F.relu(x).dtype == np.float32


def test_relu_matches_numpy_on_views(rng):
    x = rng.normal(size=(3, 4, 5, 6))[:, ::2]
    np.testing.assert_array_equal(F.relu(x), np.maximum(x, 0))
    dy = rng.normal(size=x.shape)
    np.testing.assert_array_equal(F.relu_backward(dy, x), np.where(x > 0, dy, 0.0))


def test_linear_known_answer_and_backward(rng):
    x = np.array([[1.0, 2.0, 3.0]])
    w = np.array([[1.0, 0.0, -1.0], [2.0, 2.0, 2.0]])
    y = F.linear(x, w, np.array([0.5, -1.0]))
    np.testing.assert_array_equal(y, [[-1.5, 11.0]])
    dx, dw, db = F.linear_backward(np.array([[1.0, 1.0]]), x, w)
    np.testing.assert_array_equal(dx, [[3.0, 2.0, 1.0]])
    np.testing.assert_array_equal(dw, [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    np.testing.assert_array_equal(db, [1.0, 1.0])


def test_softmax_cross_entropy_matches_reference_and_is_stable(rng):
    logits = rng.normal(size=(6, 5)) * 3
    labels = rng.integers(0, 5, size=6)
    loss, d = F.softmax_cross_entropy(logits, labels)
    loss_ref, d_ref = ref.softmax_cross_entropy(logits, labels)
    assert abs(loss - loss_ref) < 1e-12
    np.testing.assert_allclose(d, d_ref, atol=1e-14)
    big = np.array([[1000.0, 0.0], [0.0, 1000.0]], dtype=np.float32)
    loss, d = F.softmax_cross_entropy(big, np.array([0, 0]))
    assert np.isfinite(loss) and np.all(np.isfinite(d))
    assert abs(loss - 500.0) < 1e-3  # half the rows are right (loss 0), half wrong by 1000


def test_softmax_cross_entropy_uniform_logits_give_log_k():
    loss, _ = F.softmax_cross_entropy(np.zeros((3, 10)), np.array([0, 5, 9]))
    assert abs(loss - np.log(10)) < 1e-12


def test_linear_backward_batch_one_matches_batch_two():
    """N = 1 takes the outer-product path; it must agree with the matrix-product path row by row."""
    r = np.random.default_rng(10)
    x, w, dy = r.normal(size=(2, 7)), r.normal(size=(3, 7)), r.normal(size=(2, 3))
    dx1, dw1, db1 = F.linear_backward(dy[:1], x[:1], w)
    np.testing.assert_allclose(dw1, np.outer(dy[0], x[0]), atol=1e-14)
    dx2, dw2, db2 = F.linear_backward(dy, x, w)
    dxb, dwb, dbb = F.linear_backward(dy[1:], x[1:], w)
    np.testing.assert_allclose(dw1 + dwb, dw2, atol=1e-12)
    np.testing.assert_allclose(np.vstack([dx1, dxb]), dx2, atol=1e-12)
    np.testing.assert_allclose(db1 + dbb, db2, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_linear_backward_batch_one_split_among_threads(threads, dtype, thread_backend, chunks_used, monkeypatch):
    """The batch-1 weight gradient is written in row ranges by several threads: every row, exactly once."""
    from catlab import _threads as TH
    from catlab._kernels import linear as KL

    monkeypatch.setattr(TH, "num_threads", lambda: threads)
    used = chunks_used
    r = np.random.default_rng(11)
    x, w, dy = (r.normal(size=s).astype(dtype) for s in ((1, 1000), (701, 1000), (1, 701)))
    dx, dw, db = F.linear_backward(dy, x, w)
    assert max(used) == threads
    np.testing.assert_array_equal(dw, np.outer(dy[0], x[0]))  # one product per element: exact
    np.testing.assert_allclose(dx, dy @ w, rtol=1e-5)
    np.testing.assert_array_equal(db, dy[0])
    out = np.full((3, 2), np.nan, dtype)
    KL.linear_outer_backward(np.array([1.0, 2.0, 3.0], dtype), np.array([4.0, 5.0], dtype), 1, 3, out)
    np.testing.assert_array_equal(out, [[np.nan, np.nan], [8.0, 10.0], [12.0, 15.0]])  # only rows 1 and 2


def test_relu_linear_loss_match_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.normal(size=(5, 7))
    w, b = rng.normal(size=(3, 7)), rng.normal(size=3)
    labels = rng.integers(0, 3, size=5)

    def forward(x, w, b):  # the loss as a 0-d array, as torch returns it
        return np.array(F.softmax_cross_entropy(F.linear(F.relu(x), w, b), labels)[0])

    def backward(dloss, x, w, b):
        h = F.relu(x)
        dz = F.softmax_cross_entropy(F.linear(h, w, b), labels)[1] * dloss
        dh, dweight, dbias = F.linear_backward(dz, h, w)
        return F.relu_backward(dh, x), dweight, dbias

    def torch_forward(x, w, b):
        z = torch.nn.functional.linear(torch.nn.functional.relu(x), w, b)
        return torch.nn.functional.cross_entropy(z, torch.tensor(labels))

    assert_matches_torch(forward, backward, torch_forward, [x, w, b], dy=np.array(1.0), rtol=1e-12, atol=1e-12)


def test_relu_linear_and_loss_gradients(rng):
    x = rng.normal(size=(4, 6))
    x[np.abs(x) < 1e-3] = 0.5  # stay away from the kink at 0
    assert gradcheck(F.relu, lambda dy, x: F.relu_backward(dy, x), [x])["input0"] < TOL
    w, b = rng.normal(size=(3, 6)), rng.normal(size=3)
    err = gradcheck(F.linear, lambda dy, x, w, b: F.linear_backward(dy, x, w), [x, w, b])
    assert max(err.values()) < TOL, err
    labels = rng.integers(0, 6, size=4)
    err = gradcheck(
        lambda z: F.softmax_cross_entropy(z, labels)[0], lambda dy, z: dy * F.softmax_cross_entropy(z, labels)[1], [x]
    )
    assert err["input0"] < TOL, err


def test_relu_backward_at_nan_passes_the_gradient_like_torch():
    """Issue 14, item 3: catlab returned 0 at a NaN input, torch passes dy through (NaN is not <= 0)."""
    x = np.array([np.nan, -1.0, 0.0, 2.0, np.inf, -np.inf])
    dy = np.array([5.0, 5.0, 5.0, 5.0, 5.0, 5.0])
    np.testing.assert_array_equal(F.relu_backward(dy, x), [5.0, 0.0, 0.0, 5.0, 5.0, 0.0])
    np.testing.assert_array_equal(F.relu(x), [np.nan, 0.0, 0.0, 2.0, np.inf, 0.0])
    torch = pytest.importorskip("torch")
    for dtype in (np.float32, np.float64):
        assert_matches_torch(
            F.relu,
            lambda g, x: F.relu_backward(g, x),
            torch.nn.functional.relu,
            [x.astype(dtype)],
            dy=dy.astype(dtype),
            rtol=0,
            atol=0,
        )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("N", [1, 2, 9])
def test_large_linear_products_on_catlab_threads_match_numpy(N, dtype, thread_backend):
    """Above NumPy's small-product limit the products run in catlab's kernels (rows of the batch, or of the
    weight at batch 1); they must equal NumPy's float64 products up to round-off."""
    from catlab import functional as Fm

    r = np.random.default_rng(N)
    x, w, b, dy = (r.normal(size=s).astype(dtype) for s in ((N, 700), (300, 700), (300,), (N, 300)))
    assert N * 700 * 300 > Fm._SMALL_PRODUCT
    x64, w64, dy64 = (a.astype(np.float64) for a in (x, w, dy))
    tol = dict(rtol=1e-4, atol=1e-3) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-10)
    y = F.linear(x, w, b)
    assert y.dtype == dtype and y.shape == (N, 300)
    np.testing.assert_allclose(y, x64 @ w64.T + b, **tol)
    dx, dw, db = F.linear_backward(dy, x, w)
    np.testing.assert_allclose(dx, dy64 @ w64, **tol)
    np.testing.assert_allclose(dw, dy64.T @ x64, **tol)
    np.testing.assert_allclose(db, dy64.sum(axis=0), **tol)


@pytest.mark.parametrize("threads", [1, 2])
def test_one_chunk_linear_products_use_numpy_blas_on_one_thread(threads, monkeypatch):
    """A product of at most one chunk's work runs in NumPy's BLAS, held to one thread while it runs (its
    threads would busy-wait afterwards); larger ones are split into chunks of catlab's kernels."""
    from catlab import _threads as TH
    from catlab import functional as Fm

    if not TH.numpy_blas_limitable():
        pytest.skip("threadpoolctl cannot see NumPy's BLAS here: every product runs in the kernels")
    monkeypatch.setattr(TH, "num_threads", lambda: threads)
    monkeypatch.setattr(Fm, "LINEAR_TILED_MIN_ROWS", 10**9)  # (float32 batches of 16 or more take the tiles)
    inside = []
    real = TH.numpy_blas_single_threaded

    class spy(real):
        __slots__ = ()

        def __enter__(self):
            out = super().__enter__()
            inside.append([lib.num_threads for lib in TH._blas_libs()[1]])
            return out

    monkeypatch.setattr(TH, "numpy_blas_single_threaded", spy)
    launches = []
    real_kernel = TH.run_kernel
    monkeypatch.setattr(TH, "run_kernel", lambda *a, **k: (launches.append(a[3]), real_kernel(*a, **k))[1])
    before = [lib.num_threads for lib in TH._blas_libs()[1]]
    r = np.random.default_rng(5)
    x, w, dy = (r.normal(size=s).astype(np.float32) for s in ((32, 120), (84, 120), (32, 84)))
    assert Fm._SMALL_PRODUCT < 32 * 120 * 84 < min(2 * Fm._FORWARD_CHUNK_WORK, Fm._PRODUCT_CHUNK_WORK)
    y = F.linear(x, w)
    dx, dw, _ = F.linear_backward(dy, x, w)
    x64, w64, dy64 = (a.astype(np.float64) for a in (x, w, dy))
    np.testing.assert_allclose(y, x64 @ w64.T, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(dx, dy64 @ w64, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(dw, dy64.T @ x64, rtol=1e-5, atol=1e-4)
    assert len(inside) == 3 and all(n == [1] * len(before) for n in inside)  # three products, each on one thread
    assert launches == []
    assert [lib.num_threads for lib in TH._blas_libs()[1]] == before  # restored
    xb, wb = r.normal(size=(64, 800)).astype(np.float32), r.normal(size=(600, 800)).astype(np.float32)
    expected = xb.astype(np.float64) @ wb.T.astype(np.float64)
    np.testing.assert_allclose(F.linear(xb, wb), expected, rtol=1e-4, atol=1e-3)
    assert len(inside) == 3 + (threads == 1) and launches == ([2] if threads == 2 else [])


@pytest.mark.parametrize("N, M, split", [(16, 300, "weight"), (64, 120, "weight"), (300, 120, "x")])
def test_split_forward_products_split_the_weight_rows_for_small_batches(N, M, split, monkeypatch):
    """Beyond one chunk, x @ weight.T runs as rows of y.T = weight @ x.T on catlab's threads (each thread
    packs only its share of the weight) while the batch is smaller than the outputs, else by x's rows; y is
    C-contiguous either way and equals NumPy's float64 product up to round-off."""
    from catlab import _threads as TH
    from catlab import functional as Fm

    monkeypatch.setattr(TH, "num_threads", lambda: 2)
    monkeypatch.setattr(Fm, "LINEAR_TILED_MIN_ROWS", 10**9)  # (the BLAS path, as float64 and large layers take)
    launches = []
    real_kernel = TH.run_kernel
    monkeypatch.setattr(TH, "run_kernel", lambda *a, **k: (launches.append(a[2:4]), real_kernel(*a, **k))[1])
    r = np.random.default_rng(N)
    x, w, b = (r.normal(size=s).astype(np.float32) for s in ((N, 400), (M, 400), (M,)))
    assert N * 400 * M >= 2 * max(Fm._FORWARD_CHUNK_WORK, Fm._PRODUCT_CHUNK_WORK * (split == "x"))
    y = F.linear(x, w, b)
    assert y.flags.c_contiguous and y.shape == (N, M)
    np.testing.assert_allclose(y, x.astype(np.float64) @ w.T.astype(np.float64) + b, rtol=1e-4, atol=1e-3)
    assert launches == [((M if split == "weight" else N), 2)]  # (items, chunks)


def test_numpy_blas_limit_restores_the_thread_counts():
    from catlab import _threads as TH

    if not TH.numpy_blas_limitable():
        pytest.skip("threadpoolctl cannot see NumPy's BLAS here")
    libs = TH._blas_libs()[1]
    before = [lib.num_threads for lib in libs]
    with TH.numpy_blas_single_threaded():
        assert all(lib.num_threads == 1 for lib in libs)
        with TH.numpy_blas_single_threaded():  # nested (as from two Python threads): the outer one restores
            pass
        assert all(lib.num_threads == 1 for lib in libs)
    assert [lib.num_threads for lib in libs] == before
