import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))  # for `import reference`

from hypothesis import settings  # noqa: E402

settings.register_profile("ci", max_examples=40, deadline=None, derandomize=True)
settings.load_profile("ci")


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


# ----------------------------------------------------------------------------
# Which threads run the chunks (catlab._threads.run_kernel), and how many chunks there were
# ----------------------------------------------------------------------------


@pytest.fixture(params=["numba", "python"])
def thread_backend(request, monkeypatch):
    """Run the test once with Numba's OpenMP/TBB threads and once with catlab's pool of Python threads.

    The pool asks no more work per chunk than Numba's threads here, so that the same
    sizes are split the same way on both (with more chunks than Numba has threads, the
    "numba" variant runs on the pool too)."""
    from catlab import _threads as TH

    monkeypatch.setattr(TH, "POOL_HANDOFF_FACTOR", 1)
    if request.param == "python":
        monkeypatch.setattr(TH, "numba_parallel", lambda n_chunks: False)
    elif not TH.numba_parallel(1):
        pytest.skip("Numba has no OpenMP or TBB threading layer here: only catlab's pool runs chunks")
    return request.param


@pytest.fixture
def chunks_used(monkeypatch):
    """The chunk counts of every kernel launch (catlab._threads.run_kernel) in the test, in order.

    On the pool it also checks that the pool really ran that many chunks."""
    from catlab import _threads as TH

    used = []
    real_kernel, real_chunks = TH.run_kernel, TH.run_chunks
    pool_runs = []

    def spy_kernel(kernel, parallel, items, n_chunks, *args, **kwargs):
        used.append(n_chunks)
        before = len(pool_runs)
        real_kernel(kernel, parallel, items, n_chunks, *args, **kwargs)
        if n_chunks > 1 and not TH.numba_parallel(n_chunks):
            assert pool_runs[before:] == [n_chunks], "the pool did not run the planned chunks"

    def spy_chunks(work, n):
        pool_runs.append(n)
        real_chunks(work, n)

    monkeypatch.setattr(TH, "run_kernel", spy_kernel)
    monkeypatch.setattr(TH, "run_chunks", spy_chunks)
    return used


# ----------------------------------------------------------------------------
# One line at the end of the run saying why tests were skipped, grouped by cause
# ----------------------------------------------------------------------------

_SKIP_CAUSES = [  # (substring of the skip reason, how the summary names the cause)
    ("torch", "need PyTorch (pip install torch)"),
    ("CATLAB_BROWSER_TESTS", "test the built book in Chromium (CATLAB_BROWSER_TESTS=1, after the book build)"),
    ("CATLAB_LAB_TESTS", "run the chapters in JupyterLab (CATLAB_LAB_TESTS=1)"),
    ("nbval-skip", "are notebook cells marked nbval-skip"),
]


def _skip_cause(report) -> str:
    where, reason = ("", str(report.longrepr))
    if isinstance(report.longrepr, tuple):  # (file, line, reason); nbval's skips come from its plugin
        where, reason = str(report.longrepr[0]), str(report.longrepr[2])
    if "nbval" in where:
        reason += " nbval-skip"
    for needle, cause in _SKIP_CAUSES:
        if needle in reason:
            return cause
    return reason.removeprefix("Skipped: ").strip()


def pytest_terminal_summary(terminalreporter):
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    causes: dict[str, int] = {}
    for report in skipped:
        cause = _skip_cause(report)
        causes[cause] = causes.get(cause, 0) + 1
    parts = [f"{n} {cause}" for cause, n in sorted(causes.items(), key=lambda kv: -kv[1])]
    terminalreporter.write_line(f"why {len(skipped)} tests were skipped: " + "; ".join(parts))
