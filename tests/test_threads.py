"""catlab's thread pool and thread setting: chunks, the kernels' BLAS, forks, determinism across threads."""

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
def test_pool_and_relu_split_among_threads(threads, monkeypatch):
    """Large enough to be split into chunks; expected values from NumPy reshapes (2x2 windows, no ties)."""
    from catlab import _threads as TH

    monkeypatch.setattr(TH, "num_threads", lambda: threads)
    used = []
    run = TH.run_chunks
    monkeypatch.setattr(TH, "run_chunks", lambda work, n: (used.append(n), run(work, n)))
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


def test_set_num_threads_governs_the_split(monkeypatch):
    """The thread count catlab plans for is its own setting, not Numba's, and it is process-wide."""
    import threading

    import catlab

    old = catlab.get_num_threads()
    used = []
    run = _threads.run_chunks
    monkeypatch.setattr(_threads, "run_chunks", lambda work, n: (used.append(n), run(work, n)))
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


def test_kernel_blas_is_single_threaded_inside_kernels_from_any_thread(monkeypatch):
    """Record the BLAS thread count the kernels see, from the main thread and from worker threads at once."""
    import threading

    libs = _threads._kernel_blas()
    if not libs:
        pytest.skip("threadpoolctl or scipy not installed: the limit cannot be observed")
    before = _threads.kernel_blas_threads()
    seen = []
    real = _threads.run_chunks

    def spy(work, n):
        def wrapped(t):
            seen.append(tuple(_threads.kernel_blas_threads()))
            work(t)

        real(wrapped, n)

    monkeypatch.setattr(_threads, "run_chunks", spy)
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
