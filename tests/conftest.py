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
