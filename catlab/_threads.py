"""catlab's threads: how many, who runs the chunks, and the single-threaded BLAS inside the kernels.

The compiled kernels each do a contiguous range of items (samples, planes,
rows) and release the GIL. :func:`run_kernel` cuts ``range(items)`` into a
fixed number of contiguous chunks and runs them at the same time, on one of
two backends:

- **Numba's threads** (OpenMP or TBB, :mod:`catlab._kernels.parallel`): one
  compiled call runs the chunks as the iterations of a ``prange``; starting it
  costs a few microseconds. Used wherever Numba's threading layer is OpenMP or
  TBB (decided once per process, see :func:`numba_parallel`).
- **catlab's pool of Python threads** (:func:`run_split`): chunk 0 on the
  calling thread, the others on a small ``ThreadPoolExecutor``; a hand-off
  costs 20-80 microseconds. Used where Numba only has its ``workqueue`` layer
  (not thread-safe), in a forked child of a process that started OpenMP threads
  (GNU OpenMP does not survive ``fork``), with more chunks than Numba has
  threads, or when the environment variable ``CATLAB_THREAD_BACKEND`` is ``python``.

Where a kernel writes per-chunk partial sums, they are added up in chunk
order afterwards. The chunks depend only on their number, never on which
thread or backend runs them, so the results are bit-identical whatever Python
thread calls catlab.

Thread count
    :func:`set_num_threads` / :func:`get_num_threads` set and read the number of
    threads catlab's kernels use, for the whole process (not per thread). The
    default comes from the environment variable ``CATLAB_NUM_THREADS`` when it
    is set, otherwise from the number of cores this process may run on. It is
    independent of Numba's, NumPy's and torch's own settings.

BLAS inside the kernels
    ``np.dot`` inside a Numba kernel calls the BLAS that SciPy ships (a copy
    separate from NumPy's). The kernels already give each chunk its own matrix
    products; a multi-threaded BLAS inside them would start a second pool of
    threads that fights the first one for the cores, and it would also change
    the last bits of the results. :class:`kernel_blas_single_threaded` sets that
    BLAS to one thread while any catlab kernel runs, from whatever thread, and
    restores it when the last one finishes. It needs :mod:`threadpoolctl`;
    without it, it does nothing.

NumPy's BLAS
    A matrix product small enough for one chunk runs faster in NumPy's own
    BLAS (``@``) on the calling thread than through a kernel's ``np.dot``
    (SciPy's copy: LeNet's linear layers took 1.15-1.2x as long on an AVX2 CPU).
    :class:`numpy_blas_single_threaded` keeps NumPy's BLAS on one thread
    around such a product, the same way.
"""

from __future__ import annotations

import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["set_num_threads", "get_num_threads"]

#: Upper bound for :func:`set_num_threads` (more threads than this is a mistake).
MAX_THREADS = 1024
ENV_VAR = "CATLAB_NUM_THREADS"


def _core_count() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def _check_count(n, name: str) -> int:
    from . import _validate as V

    return V.int_in_range(n, name, 1, MAX_THREADS, fix="pass a thread count such as 1, 2 or 4")


def _default_threads() -> int:
    """``CATLAB_NUM_THREADS`` if set (a warning and the core count if it is not a valid count), else the core count."""
    raw = os.environ.get(ENV_VAR, "").strip()
    if not raw:
        return _core_count()
    try:
        return _check_count(int(raw), ENV_VAR)
    except (TypeError, ValueError):
        warnings.warn(
            f"{ENV_VAR} must be an integer in [1, {MAX_THREADS}], got {raw!r}; "
            f"using the core count {_core_count()} instead",
            RuntimeWarning,
            stacklevel=2,
        )
        return _core_count()


_num_threads = _default_threads()


def set_num_threads(n: int) -> None:
    """Set the number of threads catlab's kernels use, for the whole process.

    Parameters
    ----------
    n : int
        Between 1 and 1024. The default is the environment variable
        ``CATLAB_NUM_THREADS`` if set, otherwise the number of available cores.
        Results are bit-identical for a given ``n`` (and may differ in the last
        bits between different ``n``, where batch sums are split differently).

    Raises
    ------
    TypeError, ValueError
        If ``n`` is not an integer in [1, 1024].

    Examples
    --------
    >>> import catlab
    >>> old = catlab.get_num_threads()
    >>> catlab.set_num_threads(1); catlab.get_num_threads()
    1
    >>> catlab.set_num_threads(old)
    """
    global _num_threads
    _num_threads = _check_count(n, "n")


def get_num_threads() -> int:
    """The number of threads catlab's kernels use (see :func:`set_num_threads`).

    Examples
    --------
    >>> import catlab
    >>> catlab.get_num_threads() >= 1
    True
    """
    return _num_threads


def num_threads() -> int:
    """Internal alias of :func:`get_num_threads` (tests patch this one)."""
    return _num_threads


# ----------------------------------------------------------------------------
# The BLAS inside the kernels
# ----------------------------------------------------------------------------

_controllers = None


def _blas_libs():
    """(kernel BLAS controllers, NumPy's BLAS controllers), found with threadpoolctl once, then cached."""
    global _controllers
    if _controllers is None:
        kernels, numpys = [], []
        try:
            import scipy.linalg.cython_blas  # noqa: F401  (what numba's np.dot links to)
            from threadpoolctl import ThreadpoolController

            npdir = os.path.dirname(os.path.abspath(np.__file__))
            for lib in ThreadpoolController().lib_controllers:
                path = os.path.abspath(lib.filepath or "")
                if lib.user_api == "blas":  # numpy/ and numpy.libs/ hold NumPy's own
                    (numpys if path.startswith(npdir) else kernels).append(lib)
        except ImportError:  # pragma: no cover - threadpoolctl or scipy missing
            pass
        _controllers = (kernels, numpys)
    return _controllers


def _kernel_blas():
    """The threadpoolctl controllers of every BLAS but NumPy's own (the one Numba's ``np.dot`` calls)."""
    return _blas_libs()[0]


_raw_calls: dict = {}


def _raw_blas_calls(lib):
    """``(get, set)`` thread-count functions of ``lib``: OpenBLAS's own C functions where they can be found
    (threadpoolctl's Python layers cost about 1.5 us a call, and a kernel call gets and sets twice),
    else threadpoolctl's methods."""
    calls = _raw_calls.get(id(lib))
    if calls is None:
        calls = (lib.get_num_threads, getattr(lib, "_real_set_num_threads", lib.set_num_threads))
        dynlib = getattr(lib, "dynlib", None) or getattr(lib, "_dynlib", None)  # (threadpoolctl < 3.2: _dynlib)
        if dynlib is not None and getattr(lib, "internal_api", None) == "openblas" and not _per_thread(lib):
            for prefix in ("", "scipy_"):
                for suffix in ("", "64_", "_64"):
                    get = getattr(dynlib, f"{prefix}openblas_get_num_threads{suffix}", None)
                    set_ = getattr(dynlib, f"{prefix}openblas_set_num_threads{suffix}", None)
                    if get is not None and set_ is not None and get() == lib.get_num_threads():
                        calls = (get, set_)
                        break
                else:
                    continue
                break
        _raw_calls[id(lib)] = calls
    return calls


def _kernel_blas_per_thread() -> bool:
    """Whether any of the kernels' BLAS libraries limits its threads per calling thread (decided once)."""
    flag = _raw_calls.get("per_thread")
    if flag is None:
        flag = _raw_calls["per_thread"] = any(_per_thread(lib) for lib in _kernel_blas())
    return flag


def _set_blas_threads(lib, n: int) -> None:
    # threadpoolctl >= 3.6 silently ignores OpenBLAS limits set from any thread
    # but the first one that set a limit, so call the library's own setter.
    _raw_blas_calls(lib)[1](n)


def _get_blas_threads(lib) -> int:
    return _raw_blas_calls(lib)[0]()


def _per_thread(lib) -> bool:
    """Whether ``lib``'s thread limit is per calling thread (OpenMP builds) rather than per process."""
    return getattr(lib, "threading_layer", None) == "openmp"


_blas_lock = threading.Lock()
_blas_users = [0, 0]  # callers inside a block, per BLAS copy (0: the kernels', 1: NumPy's)
_blas_saved: tuple = ([], [])  # the process-wide limits to restore when the last caller leaves


class _single_threaded_blas:
    """Context manager: one copy of BLAS (``which`` 0: the kernels', 1: NumPy's) on one thread inside the block.

    Process-wide limits (OpenBLAS with pthreads) are set by the first caller
    to enter and restored by the last to leave, so calls from several Python
    threads at once never restore a limit while another call still runs.
    Per-thread limits (OpenMP builds) are set and restored by each caller.
    """

    __slots__ = ("_own",)
    which = 0

    def __enter__(self):
        which = self.which
        libs = _blas_libs()[which]
        self._own = []
        if not libs:
            return self
        for lib in libs:
            if _per_thread(lib):
                n = _get_blas_threads(lib)
                if n != 1:
                    _set_blas_threads(lib, 1)
                    self._own.append((lib, n))
        with _blas_lock:
            _blas_users[which] += 1
            if _blas_users[which] == 1:
                for lib in libs:
                    if not _per_thread(lib):
                        n = _get_blas_threads(lib)
                        if n != 1:
                            _set_blas_threads(lib, 1)
                            _blas_saved[which].append((lib, n))
        return self

    def __exit__(self, *exc):
        which = self.which
        if not _blas_libs()[which]:
            return False
        for lib, n in self._own:
            _set_blas_threads(lib, n)
        with _blas_lock:
            _blas_users[which] -= 1
            if _blas_users[which] == 0:
                saved = _blas_saved[which]
                while saved:
                    lib, n = saved.pop()
                    _set_blas_threads(lib, n)
        return False


class kernel_blas_single_threaded(_single_threaded_blas):
    """Context manager: the kernels' BLAS runs on one thread inside the block, from any thread.

    See :class:`_single_threaded_blas` for how concurrent callers share the limit.

    Examples
    --------
    >>> with kernel_blas_single_threaded():
    ...     pass
    """

    __slots__ = ()
    which = 0


class numpy_blas_single_threaded(_single_threaded_blas):
    """Context manager: NumPy's own BLAS runs on one thread inside the block, from any thread.

    For matrix products that catlab runs with NumPy's ``@`` on the calling thread: NumPy's OpenBLAS
    threads busy-wait after a multi-threaded product and slow the kernels that run next, so catlab
    never lets them start. Without :mod:`threadpoolctl` it does nothing (and
    :func:`numpy_blas_limitable` is False).

    Examples
    --------
    >>> with numpy_blas_single_threaded():
    ...     pass
    """

    __slots__ = ()
    which = 1


def numpy_blas_limitable() -> bool:
    """Whether NumPy's BLAS was found and its threads can be limited (:class:`numpy_blas_single_threaded`)."""
    return bool(_blas_libs()[1])


class blas_limit:
    """Context manager for benchmarks: every BLAS (NumPy's and the kernels') on ``n`` threads inside the block.

    Process-wide and not reference-counted: use it from one thread, around
    whole measurements. Without :mod:`threadpoolctl` it does nothing.

    Examples
    --------
    >>> with blas_limit(1):
    ...     pass
    """

    def __init__(self, n: int):
        self.n = _check_count(n, "n")
        self._saved = []

    def __enter__(self):
        kernels, numpys = _blas_libs()
        self._saved = [(lib, lib.get_num_threads()) for lib in kernels + numpys]
        for lib, _ in self._saved:
            _set_blas_threads(lib, self.n)
        return self

    def __exit__(self, *exc):
        for lib, n in reversed(self._saved):
            _set_blas_threads(lib, n)
        self._saved = []
        return False


def kernel_blas_threads() -> list:
    """The current thread counts of the kernels' BLAS libraries, as the calling thread sees them."""
    return [lib.get_num_threads() for lib in _kernel_blas()]


# ----------------------------------------------------------------------------
# The pool and the split
# ----------------------------------------------------------------------------

_pool = None
_pool_key = None
_pool_lock = threading.Lock()


def _executor(workers: int):
    """The shared pool of worker threads, made on first use, again in a forked child, and when it must grow."""
    global _pool, _pool_key
    with _pool_lock:
        pid = os.getpid()
        if _pool is None or _pool_key[0] != pid or _pool_key[1] < workers:
            old = _pool if _pool is not None and _pool_key[0] == pid else None
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="catlab")
            _pool_key = (pid, workers)
            if old is not None:
                old.shutdown(wait=False)
        return _pool


def run_chunks(work, n_chunks: int) -> None:
    """Call ``work(t)`` for t = 0 .. n_chunks - 1, at the same time on up to ``n_chunks`` threads.

    Chunk 0 runs on the calling thread. Exceptions raised by any chunk are re-raised here.

    Examples
    --------
    >>> out = [0] * 3
    >>> def work(t):
    ...     out[t] = t * t
    >>> run_chunks(work, 3); out
    [0, 1, 4]
    """
    if n_chunks <= 1:
        work(0)
        return
    pool = _executor(n_chunks - 1)
    futures = [pool.submit(work, t) for t in range(1, n_chunks)]
    try:
        work(0)
    finally:
        for f in futures:
            f.result()


#: How much more a hand-off to catlab's pool of Python threads costs than a start of
#: Numba's OpenMP/TBB threads (20-80 us against 2-5 us measured here): :func:`chunks_for`
#: asks for that much more work per chunk when the pool runs the chunks.
POOL_HANDOFF_FACTOR = 10


#: The least work (multiply-adds or element operations) :func:`chunks_for` hands to a chunk by default.
MIN_WORK = 2e5


def chunks_for(items: int, work_per_item: float, threads: int, min_work: float = MIN_WORK) -> int:
    """How many chunks to cut ``items`` into: one per thread, but none smaller than ``min_work``.

    ``work_per_item`` is in multiply-adds (or element operations); starting a chunk on
    another thread costs some microseconds on Numba's threads and some tens of
    microseconds on catlab's pool (``min_work`` is multiplied by
    :data:`POOL_HANDOFF_FACTOR` there), so small calls stay on the calling thread.

    Examples
    --------
    >>> chunks_for(64, 1e7, 2), chunks_for(1, 1e3, 2), chunks_for(1, 1e7, 4)
    (2, 1, 1)
    """
    n = min(threads, items, int(items * work_per_item // min_work))
    if n > 1 and not numba_parallel(n):
        n = min(n, int(items * work_per_item // (min_work * POOL_HANDOFF_FACTOR)))
    return max(1, n)


def split(items: int, n_chunks: int, t: int) -> tuple[int, int]:
    """(start, stop) of chunk ``t`` when ``range(items)`` is cut into ``n_chunks`` contiguous chunks.

    Examples
    --------
    >>> [split(5, 2, t) for t in range(2)]
    [(0, 2), (2, 5)]
    """
    return t * items // n_chunks, (t + 1) * items // n_chunks


def run_split(kernel, items: int, n_chunks: int, sums=(), blas: bool = False) -> None:
    """Split the items into chunks, run the kernel on each, sum the per-chunk buffers in order.

    Calls ``kernel(i0, i1, *parts)`` for every non-empty chunk ``(i0, i1)`` of
    ``range(items)``, at the same time on up to ``n_chunks`` threads, where
    ``parts`` holds this chunk's own zeroed buffer for each array in ``sums``.
    Afterwards each array in ``sums`` is overwritten with the sum of its
    buffers, added in chunk order, so the result depends on ``n_chunks`` only.

    Parameters
    ----------
    kernel : callable
    items : int
    n_chunks : int
    sums : sequence of ndarray, optional
        Outputs that every chunk adds to (such as a weight gradient summed over the batch).
    blas : bool, default False
        Keep the kernels' BLAS single-threaded while the chunks run.

    Examples
    --------
    >>> import numpy as np
    >>> total = np.empty(1)
    >>> def kernel(i0, i1, acc):
    ...     acc[0] += sum(range(i0, i1))
    >>> run_split(kernel, 10, 3, sums=[total]); total
    array([45.])
    """
    parts = [np.zeros((n_chunks,) + out.shape, dtype=out.dtype) for out in sums]

    def work(t):
        i0, i1 = split(items, n_chunks, t)
        if i1 > i0:
            kernel(i0, i1, *(p[t] for p in parts))

    def blas_work(t):  # per-thread BLAS limits (OpenMP builds) must be set on each worker
        with kernel_blas_single_threaded():
            work(t)

    if blas:
        with kernel_blas_single_threaded():  # holds a process-wide limit for the whole call
            run_chunks(blas_work, n_chunks)
    else:
        run_chunks(work, n_chunks)
    for out, p in zip(sums, parts):
        np.sum(p, axis=0, out=out)


def run_planes(kernel, items: int, work_per_item: float) -> None:
    """:func:`run_split` with the chunk count from :func:`chunks_for` and catlab's thread count."""
    run_split(kernel, items, chunks_for(items, work_per_item, num_threads()))


# ----------------------------------------------------------------------------
# Numba's own threads (OpenMP or TBB), where they are safe and fast
# ----------------------------------------------------------------------------

#: Set to ``python`` to always use catlab's pool of Python threads instead of
#: Numba's threading layer (``numba`` or unset: use Numba's where it is OpenMP or TBB).
BACKEND_ENV_VAR = "CATLAB_THREAD_BACKEND"

#: How long Numba's GNU OpenMP threads busy-wait for the next chunk before they sleep, in
#: spins (tens of microseconds; GNU's default, 300000, is about a millisecond, and its spinning
#: threads then slowed NumPy's own BLAS threads in the call after catlab's up to 8 times).
#: Applied only where neither ``GOMP_SPINCOUNT`` nor ``OMP_WAIT_POLICY`` is set.
GOMP_SPINCOUNT = 10000

_numba_state = {"decided_pid": None, "ok": False, "launched_pid": None}
_numba_lock = threading.Lock()


def _decide_numba_parallel() -> bool:
    """Whether Numba's threading layer runs the chunks in this process (see :func:`numba_parallel`)."""
    if os.environ.get(BACKEND_ENV_VAR, "").strip().lower() == "python":
        return False
    launched = _numba_state["launched_pid"]
    if launched is not None and launched != os.getpid():
        return False  # a forked child of a process that started OpenMP threads: GNU OpenMP would hang or abort
    try:
        import numba
        from numba.core import config
    except ImportError:  # pragma: no cover - numba is a dependency
        return False
    if config.DISABLE_JIT:
        return False
    try:
        layer = numba.threading_layer()  # already chosen (by catlab or by other code in this process)
    except ValueError:  # not started yet: start a thread-safe one, or none
        saved = config.THREADING_LAYER
        if saved == "default":
            config.THREADING_LAYER = "threadsafe"  # TBB or OpenMP, what "default" prefers too; never workqueue
        spin = not any(v in os.environ for v in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY"))
        if spin:  # read once, when Numba loads GNU OpenMP below; unset again so that no other library sees it
            os.environ["GOMP_SPINCOUNT"] = str(GOMP_SPINCOUNT)
        try:
            from ._kernels import parallel as _par

            out = np.zeros(2, dtype=np.int64)
            _par.probe(2, out)
            layer = numba.threading_layer()
        except Exception:  # noqa: BLE001 - no thread-safe layer here: Numba raises ValueError
            return False
        finally:
            config.THREADING_LAYER = saved
            if spin:
                del os.environ["GOMP_SPINCOUNT"]
        _numba_state["launched_pid"] = os.getpid()
    return layer in ("omp", "tbb")


def numba_parallel(n_chunks: int) -> bool:
    """Whether :func:`run_kernel` runs ``n_chunks`` chunks on Numba's threads rather than catlab's pool.

    Yes where Numba's threading layer is OpenMP or TBB (decided once per
    process; started by the first call if no code has started one), unless
    the environment variable ``CATLAB_THREAD_BACKEND`` is ``python``, the
    process is a forked child of one that started OpenMP threads, the JIT is
    disabled, or there are more chunks than Numba has threads.
    """
    pid = os.getpid()
    if _numba_state["decided_pid"] != pid:
        with _numba_lock:
            if _numba_state["decided_pid"] != pid:
                _numba_state["ok"] = _decide_numba_parallel()
                _numba_state["decided_pid"] = pid
    if not _numba_state["ok"]:
        return False
    return n_chunks <= _numba_threads()


def _numba_threads() -> int:
    """``numba.get_num_threads()``, through the threading layer's C function once it is known (the public
    function checks that the threads were launched on every call: 1.1 us against 0.2 us)."""
    fn = _numba_state.get("get_threads")
    if fn is None:
        import numba

        n = numba.get_num_threads()  # launches the threads if need be
        try:
            from numba.np.ufunc import parallel as _npar

            fn = _npar._get_num_threads
            if fn() != n:  # pragma: no cover - another Numba's internals
                raise AttributeError
        except (ImportError, AttributeError, TypeError):  # pragma: no cover - another Numba's internals
            fn = numba.get_num_threads
        _numba_state["get_threads"] = fn
    return fn()


def run_kernel(kernel, parallel, items: int, n_chunks: int, before=(), after=(), sums=(), blas: bool = False) -> None:
    """Run ``kernel(*before, i0, i1, *parts, *after)`` over ``n_chunks`` chunks of ``range(items)``.

    The chunks are those of :func:`split`. With one chunk the kernel runs on the
    calling thread with each array in ``sums`` zeroed as its part; with more,
    on Numba's threads through ``parallel`` (the wrapper of
    :mod:`catlab._kernels.parallel`, called as ``parallel(n_chunks, items,
    *before, *stacked_parts, *after)``) where :func:`numba_parallel` allows, else
    on catlab's pool (:func:`run_split`). Per-chunk parts are added in chunk
    order either way, so the results depend on ``n_chunks`` only.

    Examples
    --------
    >>> import numpy as np
    >>> from catlab._kernels import activation, parallel
    >>> x = np.array([-1.0, 2.0, -3.0, 4.0]); y = np.empty(4)
    >>> run_kernel(activation.relu_forward, parallel.relu_forward, 4, 2, (x,), (y,)); y
    array([0., 2., 0., 4.])
    """
    if n_chunks <= 1:
        for out in sums:
            out[...] = 0
        if blas:
            with kernel_blas_single_threaded():
                kernel(*before, 0, items, *sums, *after)
        else:
            kernel(*before, 0, items, *sums, *after)
        return
    if not numba_parallel(n_chunks) or (blas and _kernel_blas_per_thread()):
        # (an OpenMP-built BLAS limits threads per calling thread: only catlab's pool can set that on each)
        run_split(lambda i0, i1, *parts: kernel(*before, i0, i1, *parts, *after), items, n_chunks, sums, blas)
        return
    parts = [np.zeros((n_chunks,) + out.shape, dtype=out.dtype) for out in sums]
    if blas:
        with kernel_blas_single_threaded():
            parallel(n_chunks, items, *before, *parts, *after)
    else:
        parallel(n_chunks, items, *before, *parts, *after)
    for out, p in zip(sums, parts):
        np.sum(p, axis=0, out=out)
