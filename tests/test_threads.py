"""catlab's thread pool and thread setting: chunks, the kernels' BLAS, forks, determinism across threads."""

import os

import numpy as np
import pytest

from catlab import _threads
from catlab import functional as F


def test_single_threaded_blas_restores_the_thread_counts():
    libs = _threads._kernel_blas()
    before = [lib.num_threads for lib in libs]
    with _threads.kernel_blas_single_threaded():
        assert all(lib.num_threads == 1 for lib in libs)
    assert [lib.num_threads for lib in libs] == before


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_pool_and_relu_split_among_threads(threads, thread_backend, chunks_used, monkeypatch):
    """Large enough to be split into chunks; expected values from NumPy reshapes (2x2 windows, no ties)."""
    from catlab import _threads as TH

    monkeypatch.setattr(TH, "num_threads", lambda: threads)
    used = chunks_used
    r = np.random.default_rng(9)
    x = r.normal(size=(8, 16, 96, 94))
    win = x.reshape(8, 16, 48, 2, 47, 2)
    dy = r.normal(size=(8, 16, 48, 47))
    up = np.repeat(np.repeat(dy, 2, axis=2), 2, axis=3)  # each window's gradient on its four cells

    y = F.max_pool2d(x, 2)
    np.testing.assert_array_equal(y, win.max(axis=(3, 5)))
    winner = x == np.repeat(np.repeat(y, 2, axis=2), 2, axis=3)
    np.testing.assert_array_equal(F.max_pool2d_backward(dy, x, 2), np.where(winner, up, 0.0))
    np.testing.assert_allclose(F.avg_pool2d(x, 2), win.mean(axis=(3, 5)), atol=1e-14)
    np.testing.assert_allclose(F.avg_pool2d_backward(dy, x, 2), up / 4, atol=1e-14)
    np.testing.assert_array_equal(F.relu(x), np.maximum(x, 0.0))
    np.testing.assert_array_equal(F.relu_backward(up, x), np.where(x > 0, up, 0.0))
    assert used == [threads] * 6  # every one of the six calls was split


def test_thread_pool_works_in_a_forked_child():
    """A child made by fork has none of the parent's worker threads; the pool must be made again there."""
    import multiprocessing as mp

    if "fork" not in mp.get_all_start_methods():
        pytest.skip("no fork on this platform")
    from catlab import _threads as TH

    TH.run_chunks(lambda t: None, 2)  # the parent's pool exists now
    ctx = mp.get_context("fork")
    with ctx.Pool(1) as pool:
        out = pool.apply_async(_split_in_child).get(timeout=60)
    assert out == [0, 1, 4]


def _split_in_child():
    from catlab import _threads as TH

    out = [None] * 3

    def work(t):
        out[t] = t * t

    TH.run_chunks(work, 3)
    return out


# --- catlab.set_num_threads / get_num_threads -------------------------------------------------


def test_set_num_threads_governs_the_split(thread_backend, chunks_used):
    """The thread count catlab plans for is its own setting, not Numba's, and it is process-wide."""
    import threading

    import catlab

    old = catlab.get_num_threads()
    used = chunks_used
    x = np.random.default_rng(0).normal(size=(8, 16, 96, 94))
    try:
        for n in (1, 3):
            catlab.set_num_threads(n)
            assert catlab.get_num_threads() == n
            seen = []
            t = threading.Thread(target=lambda out=seen: out.append(catlab.get_num_threads()))
            t.start()
            t.join()
            assert seen == [n]  # the same in every Python thread
            used.clear()
            F.relu(x)
            assert used == [n]
    finally:
        catlab.set_num_threads(old)
    assert catlab.get_num_threads() == old


@pytest.mark.parametrize(
    "bad,exc",
    [(0, ValueError), (-2, ValueError), (2**40, ValueError), (1.5, TypeError), (True, TypeError), ("4", TypeError)],
)
def test_set_num_threads_rejects_bad_counts(bad, exc):
    import catlab

    old = catlab.get_num_threads()
    with pytest.raises(exc, match="n must"):
        catlab.set_num_threads(bad)
    assert catlab.get_num_threads() == old


def _threads_in_child(env_value):
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root)
    env.pop("CATLAB_NUM_THREADS", None)
    if env_value is not None:
        env["CATLAB_NUM_THREADS"] = env_value
    code = "import catlab; print(catlab.get_num_threads())"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)


def test_default_comes_from_the_environment_variable():
    import os

    out = _threads_in_child("3")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "3"
    cores = str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    out = _threads_in_child(None)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == cores
    out = _threads_in_child("lots")  # one warning naming the variable, then the core count
    assert out.returncode == 0, out.stderr
    assert "CATLAB_NUM_THREADS must be an integer" in out.stderr and out.stdout.strip() == cores


# --- the same bits whatever Python thread calls (issue 14, item 2) ----------------------------


def _conv_step(x, w, b):
    y = F.conv2d(x, w, b, padding=1)
    dx, dweight, db = F.conv2d_backward(np.ones_like(y), x, w, padding=1)
    return y, dx, dweight, db


def test_results_are_bit_identical_from_several_threads_at_once():
    """The issue's case: x (4, 16, 24, 24) float32, w (32, 16, 3, 3), padding=1 (the wide path on 2
    threads), plus a strided (im2col) and a small-channel (direct) layer; each from the main thread, then
    from six threads at once, three calls each. Before the fix the worker threads' BLAS ran
    multi-threaded (threadpoolctl ignored the limit there) and the last bits differed."""
    from concurrent.futures import ThreadPoolExecutor

    r = np.random.default_rng(1)
    cases = [
        (r.normal(size=(4, 16, 24, 24)).astype(np.float32), r.normal(size=(32, 16, 3, 3)).astype(np.float32)),
        (r.normal(size=(1, 16, 24, 24)).astype(np.float32), r.normal(size=(32, 16, 3, 3)).astype(np.float32)),
        (r.normal(size=(4, 3, 24, 24)).astype(np.float32), r.normal(size=(6, 3, 3, 3)).astype(np.float32)),
    ]
    cases = [(x, w, r.normal(size=w.shape[0]).astype(np.float32)) for x, w in cases]
    want = [_conv_step(*c) for c in cases]

    def job(i):
        return [[_conv_step(*c) for c in cases] for _ in range(3)]

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(job, range(6)))
    for per_thread in results:
        for per_call in per_thread:
            for got, exp in zip(per_call, want):
                for a, b in zip(got, exp):
                    np.testing.assert_array_equal(a, b)


def test_kernel_blas_is_single_threaded_inside_kernels_from_any_thread(thread_backend, monkeypatch):
    """Record the BLAS thread count the kernels see, from the main thread and from worker threads at once.

    On the pool, inside every chunk; on Numba's threads, when the chunks start (the
    limit of SciPy's OpenBLAS is process-wide, so the OpenMP threads see the same)."""
    import threading

    libs = _threads._kernel_blas()
    if not libs:
        pytest.skip("threadpoolctl or scipy not installed: the limit cannot be observed")
    before = _threads.kernel_blas_threads()
    from catlab import _conv_paths

    monkeypatch.setattr(_conv_paths, "TILED", False)  # the tiled forward calls no BLAS: keep the BLAS paths
    seen = []
    real = _threads.run_chunks

    def spy(work, n):
        def wrapped(t):
            seen.append(tuple(_threads.kernel_blas_threads()))
            work(t)

        real(wrapped, n)

    monkeypatch.setattr(_threads, "run_chunks", spy)
    real_kernel = _threads.run_kernel

    def spy_kernel(kernel, parallel, *args, **kwargs):
        def observed(*a):
            seen.append(tuple(_threads.kernel_blas_threads()))
            parallel(*a)

        real_kernel(kernel, observed, *args, **kwargs)

    monkeypatch.setattr(_threads, "run_kernel", spy_kernel)
    x = np.random.default_rng(2).normal(size=(4, 16, 24, 24)).astype(np.float32)
    w = np.ones((32, 16, 3, 3), np.float32)
    threads = [threading.Thread(target=_conv_step, args=(x, w, None)) for _ in range(4)]
    for t in threads:
        t.start()
    _conv_step(x, w, None)
    for t in threads:
        t.join()
    conv_calls = [s for s in seen if s]
    assert conv_calls and all(s == (1,) * len(libs) for s in conv_calls), set(seen)
    assert _threads.kernel_blas_threads() == before  # restored once the last call left


def test_blas_limit_sets_and_restores_every_blas():
    libs = _threads._kernel_blas()
    if not libs:
        pytest.skip("threadpoolctl or scipy not installed")
    before = _threads.kernel_blas_threads()
    with _threads.blas_limit(1):
        assert _threads.kernel_blas_threads() == [1] * len(libs)
    assert _threads.kernel_blas_threads() == before


def _every_chunked_op(x, w, rng_seed=0):
    """Call every public operation that splits work into chunks, on small float64 inputs; return the results."""
    from catlab import _conv_paths, _winograd

    r = np.random.default_rng(rng_seed)
    N, C, H, W = x.shape
    out = {}
    for name, kw, wt, n in [
        ("direct", dict(padding=1), w[:4, :2], 1),  # few channels and filters (forward: fewer samples than threads)
        ("direct, batch", dict(padding=1), w[:4, :2], N),  # the forward pass then takes the wide kernels
        ("wide", dict(padding=1), w, N),
        ("im2col", dict(stride=3, padding=0), w[:, :, :1, :1], N),  # a stride longer than the kernel
    ]:
        xi = x[:n, : wt.shape[1]]
        y = F.conv2d(xi, wt, **kw)
        out["conv " + name] = (y, *F.conv2d_backward(r.normal(size=y.shape), xi, wt, **kw))
    out["conv im2col, row blocks"] = (
        F.conv2d(x[:1], w, padding=1),
        *F.conv2d_backward(r.normal(size=(1, w.shape[0], H, W)), x[:1], w, padding=1),
    )
    x32, w32 = x.astype(np.float32), w.astype(np.float32)  # the tiled kernels take float32 forwards
    y32 = F.conv2d(x32, w32, padding=1)
    out["conv tiled"] = (
        y32,
        F.conv2d(x32[:1], w32, padding=1),  # one sample: parts of the positions
        *F.conv2d_backward(y32, x32, w32, padding=1),
        *F.conv2d_backward(y32[:1], x32[:1], w32, padding=1),
        *F.conv2d_backward(F.conv2d(x32, w32, stride=2, padding=1), x32, w32, stride=2, padding=1),  # dx phases
    )
    real_pair = _conv_paths._backward_pair
    _conv_paths._backward_pair = lambda *a: None  # no pair: each kernel in parts, one after the other
    try:
        # one sample, 40 filters: three blocks of 16 (or ten of 4) in parts, adding into the same rows
        dy40, w40 = np.tile(y32[:1], (1, 3, 1, 1))[:, :40], np.tile(w32, (3, 1, 1, 1))[:40]
        out["conv tiled, one sample in parts"] = F.conv2d_backward(dy40, x32[:1], w40, padding=1)
    finally:
        _conv_paths._backward_pair = real_pair
    real_kind, real_dx_kind = _conv_paths.tiled_kind, _conv_paths._strided_kind
    y32s = F.conv2d(x32, w32, stride=2, padding=1)
    _conv_paths.tiled_kind = lambda Kg, R, S, geo, N=None, taps=None: (
        "positions",
        _conv_paths.tiled_block(Kg),
    )  # across positions
    _conv_paths._strided_kind = lambda *a: "positions"
    try:
        out["conv tiled, positions"] = (
            F.conv2d(x32, w32, padding=1),
            F.conv2d(x32[:1], w32, padding=1),
            F.conv2d_backward(y32s, x32, w32, stride=2, padding=1)[0],  # dx phases
            # one sample, stride 2: the weight gradient and every phase of dx at once (a pair of kernels)
            *F.conv2d_backward(y32s[:1], x32[:1], w32, stride=2, padding=1),
        )
    finally:
        _conv_paths.tiled_kind, _conv_paths._strided_kind = real_kind, real_dx_kind
    _conv_paths.tiled_kind = lambda Kg, R, S, geo, N=None, taps=None: ("filters", 16)  # the tiles across filters, too
    _conv_paths._strided_kind = lambda *a: "filters"
    try:
        out["conv filter tiles"] = (
            F.conv2d(x32, w32, padding=1),
            F.conv2d(x32[:1], w32, padding=1),
            F.conv2d_backward(y32s, x32, w32, stride=2, padding=1)[0],  # dx phases
        )
    finally:
        _conv_paths.tiled_kind, _conv_paths._strided_kind = real_kind, real_dx_kind
    out["winograd 2"] = _winograd.conv2d_winograd(x, w, padding=1, m=2)
    out["winograd 4"] = _winograd.conv2d_winograd(x, w, padding=1, m=4)
    dy2 = r.normal(size=(N, C, H // 2, W // 2))
    y, ind = F.max_pool2d(x, 2, return_indices=True)
    out["max pool"] = (
        F.max_pool2d(x, 2),
        y,
        ind,
        F.max_pool2d_backward(dy2, x, 2),
        F.max_pool2d_backward(dy2, x, 2, indices=ind),
    )
    out["avg pool"] = (F.avg_pool2d(x, 2), F.avg_pool2d_backward(dy2, x, 2))
    dyx = r.normal(size=x.shape)
    out["relu"] = (F.relu(x), F.relu_backward(dyx, x))
    out["linear"] = F.linear_backward(r.normal(size=(1, 300)), x[:1].reshape(1, -1)[:, :200], r.normal(size=(300, 200)))
    wl, xl = r.normal(size=(300, 400)), x.reshape(N, -1)[:, :400]  # products above NumPy's small-product limit
    out["linear, products"] = (
        F.linear(xl, wl),  # rows of the batch
        F.linear(xl[:1], wl, np.ones(300)),  # batch 1: rows of the weight
        *F.linear_backward(r.normal(size=(N, 300)), xl, wl),
    )
    x32, w32, dy32 = (r.normal(size=s).astype(np.float32) for s in ((20, 40), (30, 40), (20, 30)))
    out["linear, tiles"] = (F.linear(x32, w32, np.ones(30, np.float32)), *F.linear_backward(dy32, x32, w32))
    rm, rv = np.zeros(C), np.ones(C)
    out["batch norm"] = (*F.batch_norm(x, rm, rv, training=True), *F.batch_norm_backward(dyx, x, training=True))
    y, mask = F.dropout(x, 0.5, rng=np.random.default_rng(1), return_mask=True)
    out["dropout"] = (y, F.dropout_backward(dyx, mask, 0.5))
    out["adaptive avg pool"] = (
        F.adaptive_avg_pool2d(x, 1),
        F.adaptive_avg_pool2d(x, (3, 5)),
        F.adaptive_avg_pool2d_backward(r.normal(size=(N, C, 3, 5)), x, (3, 5)),
    )
    return out


def test_every_parallel_wrapper_gives_the_single_chunk_results(monkeypatch):
    """Each kernel's wrapper in catlab._kernels.parallel, run with two chunks on Numba's threads, gives what
    one chunk on the calling thread gives (equal up to the order of batch sums), and every wrapper is used."""
    from catlab import _conv_paths
    from catlab._kernels import parallel as P

    if not _threads.numba_parallel(2):
        pytest.skip("Numba has no OpenMP or TBB threading layer here (or one thread): only catlab's pool runs chunks")
    r = np.random.default_rng(4)
    x = r.normal(size=(4, 16, 12, 10))
    w = r.normal(size=(16, 16, 3, 3))
    monkeypatch.setattr(_threads, "num_threads", lambda: 1)
    monkeypatch.setattr(_conv_paths, "TILED", True)  # also where the CPU has no AVX-512
    monkeypatch.setattr(_conv_paths, "TILED_MIN_WORK", 0)  # and for these small layers
    want = _every_chunked_op(x, w)
    launched = set()
    real = _threads.run_kernel

    def spy(kernel, parallel, items, n_chunks, *args, **kwargs):
        if n_chunks > 1:
            assert _threads.numba_parallel(n_chunks)
            launched.add(parallel.__name__)
        real(kernel, parallel, items, n_chunks, *args, **kwargs)

    monkeypatch.setattr(_threads, "run_kernel", spy)
    monkeypatch.setattr(_threads, "num_threads", lambda: 2)
    monkeypatch.setattr(_threads, "chunks_for", lambda items, work, threads, min_work=0: min(items, threads))
    monkeypatch.setattr(_threads, "MIN_WORK", 0)
    monkeypatch.setattr(_conv_paths, "WIDE_ONE_THREAD_WORK", 0)  # batch 1: the row blocks of im2col
    got = _every_chunked_op(x, w)
    for name, values in want.items():
        values = values if isinstance(values, tuple) else (values,)
        others = got[name] if isinstance(got[name], tuple) else (got[name],)
        for a, b in zip(values, others):
            tol = 1e-12 if a.dtype != np.float32 else 1e-5  # float32 (tiled): batch sums in another order
            np.testing.assert_allclose(b, a, rtol=tol, atol=tol * max(1.0, float(np.abs(a).max())), err_msg=name)
    wrappers = {n for n in dir(P) if callable(getattr(P, n)) and hasattr(getattr(P, n), "py_func")} - {"probe"}
    assert wrappers <= launched, f"never launched with two chunks: {sorted(wrappers - launched)}"


@pytest.mark.parametrize("backend", ["", "python"])
def test_thread_backend_choice_in_a_new_process(backend):
    """CATLAB_THREAD_BACKEND=python keeps every chunk on catlab's pool and never starts Numba's threads;
    unset, Numba's threads run the chunks where its layer is OpenMP or TBB (started as 'threadsafe')."""
    import subprocess
    import sys

    code = (
        "import numpy as np, numba, catlab.functional as F, catlab._threads as T\n"
        "F.relu(np.ones((64, 64, 32, 32)))\n"
        "try:\n    layer = numba.threading_layer()\nexcept ValueError:\n    layer = 'none'\n"
        "print(T.numba_parallel(2), layer, numba.config.THREADING_LAYER)\n"
    )
    env = dict(os.environ, CATLAB_THREAD_BACKEND=backend, CATLAB_NUM_THREADS="2")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    ok, layer, config_layer = out.stdout.split()
    assert config_layer == os.environ.get("NUMBA_THREADING_LAYER", "default")  # restored after the probe
    if backend == "python":
        assert (ok, layer) == ("False", "none")
    else:
        assert ok == str(layer in ("omp", "tbb"))
        assert layer != "workqueue" or ok == "False"
