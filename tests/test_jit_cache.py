"""catlab._kernels._jit: importing and running works where Numba finds no cache directory (issue 14, item 1).

Numba's own locators are narrowed to NUMBA_CACHE_DIR (unset here), which is what a
read-only site-packages plus an unwritable home amounts to; the real thing, a
non-editable install used by another user, is tools/check_readonly_install.sh
(run by .ci/run).
"""

import os
import stat
import warnings

import numba
import pytest
from numba.core import caching

from catlab._kernels import _jit

pytestmark = pytest.mark.skipif(numba.config.DISABLE_JIT, reason="NUMBA_DISABLE_JIT=1: nothing is compiled or cached")


def add_one(x):
    return x + 1


def twice(x):
    return 2 * x


@pytest.fixture
def no_locator(monkeypatch, tmp_path):
    """Numba can cache nowhere; the temporary directory is tmp_path; _jit's decisions start afresh."""
    user_dir = [c for c in caching.CacheImpl._locator_classes if "UserProvided" in c.__name__]
    monkeypatch.setattr(caching.CacheImpl, "_locator_classes", user_dir)
    monkeypatch.setattr(numba.config, "CACHE_DIR", "")
    monkeypatch.setattr(_jit.tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(_jit, "_state", {"needs_fallback": False, "directory": None, "decided": False, "warned": False})
    with pytest.raises(RuntimeError, match="no locator available"):  # what import used to die of
        numba.njit(cache=True)(add_one)
    return tmp_path / f"catlab-numba-cache-{os.getuid()}"


def test_falls_back_to_a_private_temporary_cache_silently(no_locator):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f = _jit.njit(cache=True, nogil=True)(add_one)
        g = _jit.njit(cache=True)(twice)
    assert f(41) == 42 and g(21) == 42
    assert numba.config.CACHE_DIR == ""  # restored: other Numba users are not affected
    st = os.lstat(no_locator)
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700
    assert any(name.endswith(".nbi") for _, _, files in os.walk(no_locator) for name in files)


@pytest.mark.parametrize("squat", ["world-writable", "symlink"])
def test_an_unsafe_temporary_directory_is_refused_with_one_warning(no_locator, tmp_path, squat):
    if squat == "world-writable":
        no_locator.mkdir()
        no_locator.chmod(0o777)
    else:
        (tmp_path / "elsewhere").mkdir(mode=0o700)
        no_locator.symlink_to(tmp_path / "elsewhere")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        f = _jit.njit(cache=True)(add_one)
        g = _jit.njit(cache=True, nogil=True)(twice)
    assert [w.category for w in record] == [RuntimeWarning]  # one warning per process, not one per kernel
    assert "NUMBA_CACHE_DIR" in str(record[0].message)
    assert f(1) == 2 and g(2) == 4
    assert not any(name.endswith((".nbi", ".nbc")) for _, _, files in os.walk(tmp_path) for name in files)


def test_no_usable_temporary_directory_means_no_cache(monkeypatch):
    def broken():
        raise FileNotFoundError("No usable temporary directory found")

    monkeypatch.setattr(_jit.tempfile, "gettempdir", broken)
    assert _jit.private_temp_dir() is None


def test_without_cache_or_with_a_working_cache_it_is_numba_njit(tmp_path, monkeypatch):
    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _jit.njit(add_one)(1) == 2
        f = _jit.njit(cache=True)(twice)
        assert f(3) == 6
    assert any(name.endswith(".nbi") for _, _, files in os.walk(tmp_path) for name in files)


def test_every_kernel_module_uses_the_fallback_njit():
    """A kernel module importing numba's njit directly breaks `import catlab` in read-only installs."""
    import pathlib
    import re

    kernels = pathlib.Path(__file__).resolve().parents[1] / "catlab" / "_kernels"
    for path in sorted(kernels.glob("*.py")):
        if path.name in ("_jit.py", "__init__.py"):
            continue
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"from numba import .*\bnjit\b|numba\.njit|@numba\.", text), path.name
        if "@njit" in text:
            assert "from ._jit import njit" in text, path.name


CALLEE = "from catlab._kernels._jit import njit\n\n\n@njit(cache=True)\ndef step(x):\n    return x + {inc}\n"
CALLER = (
    "from catlab._kernels._jit import njit\n\nfrom callee import step\n\n\n"
    "@njit(cache=True)\ndef run(x):\n    return step(x) * 10\n"
)


def _run_caller(tmp_path, cache):
    import subprocess
    import sys

    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), PYTHONPATH=str(tmp_path), PYTHONDONTWRITEBYTECODE="1")
    out = subprocess.run(
        [sys.executable, "-c", "import caller; print(caller.run(1))"], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return int(out.stdout.split()[-1])


def test_a_cached_kernel_is_recompiled_when_a_module_beside_it_changes(tmp_path):
    """Numba's freshness check looks at a kernel's own file only: after an edit to a callee in another
    module (a ``git pull`` in an editable install), the cached caller would still run the old callee.
    The stamp catlab adds (a digest of the modules beside the kernel) makes the caller recompile."""
    cache = tmp_path / "cache"
    (tmp_path / "caller.py").write_text(CALLER)
    (tmp_path / "callee.py").write_text(CALLEE.format(inc=1))
    assert _run_caller(tmp_path, cache) == 20
    assert any(p.suffix == ".nbi" for p in cache.rglob("*"))  # cached
    assert _run_caller(tmp_path, cache) == 20  # from the cache
    (tmp_path / "callee.py").write_text(CALLEE.format(inc=2))  # caller.py untouched
    assert _run_caller(tmp_path, cache) == 30


def test_the_sources_digest_changes_with_any_sibling(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "b.txt").write_text("not a module\n")
    first = _jit.sources_digest(str(tmp_path))
    assert _jit.sources_digest(str(tmp_path)) == first  # computed once per process
    _jit._digests.clear()
    (tmp_path / "b.txt").write_text("changed, but not a module\n")
    assert _jit.sources_digest(str(tmp_path)) == first
    _jit._digests.clear()
    (tmp_path / "a.py").write_text("x = 2\n")
    assert _jit.sources_digest(str(tmp_path)) != first
