"""Atomic writes: a failed write leaves the old file and no temporary file behind."""

import os
import subprocess
import sys
import time

import pytest

from catlab._io import atomic_write, remove_stale_temporaries


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    dest = tmp_path / "state.npz"
    dest.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_write(dest) as f:
            f.write(b"half of the new")
            raise RuntimeError("disk full")
    assert dest.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.npz"]


def test_successful_write_replaces_the_file(tmp_path):
    dest = tmp_path / "state.npz"
    dest.write_bytes(b"old")
    with atomic_write(dest) as f:
        f.write(b"new")
    assert dest.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.npz"]


def _dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_save_removes_the_temporaries_that_killed_saves_left_and_nothing_else(tmp_path):
    """Issue 14, item 4: a save killed midway leaves .<name>.<pid>.<random>.tmp; the next save cleans up."""
    dest = tmp_path / "c.npz"
    dead = _dead_pid()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale_dead = tmp_path / f".c.npz.{dead}.abcd_123.tmp"  # its process is gone
        stale_old = tmp_path / f".c.npz.{live.pid}.zzzzzzzz.tmp"  # alive, but untouched for two hours
        fresh_live = tmp_path / f".c.npz.{live.pid}.k2k2k2k2.tmp"  # a save in progress elsewhere
        fresh_self = tmp_path / f".c.npz.{os.getpid()}.selfself.tmp"  # another thread of this process
        others = [
            tmp_path / n
            for n in (
                f".other.npz.{dead}.abcdefgh.tmp",  # another target's
                f"c.npz.{dead}.abcdefgh.tmp",  # not hidden: not our name
                f".c.npz.{dead}.abcdefgh.part",  # another suffix
                f".c.npz.{dead}.abc.tmp",  # not eight random characters
                f".c.npz.x{dead}.abcdefgh.tmp",  # not a pid
                ".c.npz.tmp",
                "notes.txt",
            )
        ]
        for p in [stale_dead, stale_old, fresh_live, fresh_self, *others]:
            p.write_bytes(b"half")
        two_hours_ago = time.time() - 7200
        os.utime(stale_old, (two_hours_ago, two_hours_ago))
        with atomic_write(dest) as f:
            f.write(b"new")
        left = sorted(p.name for p in tmp_path.iterdir())
        assert left == sorted(p.name for p in [dest, fresh_live, fresh_self, *others])
        assert dest.read_bytes() == b"new"
    finally:
        live.kill()
        live.wait()


def test_temporary_names_carry_the_pid_and_match_the_cleanup_pattern(tmp_path):
    dest = tmp_path / "state.npz"
    seen = []
    with atomic_write(dest) as f:
        seen = [p.name for p in tmp_path.iterdir()]
        f.write(b"x")
    assert len(seen) == 1 and seen[0].startswith(f".state.npz.{os.getpid()}.") and seen[0].endswith(".tmp")
    # a temporary whose process died is exactly what remove_stale_temporaries takes
    leftover = tmp_path / seen[0].replace(f".{os.getpid()}.", f".{_dead_pid()}.")
    leftover.write_bytes(b"half")
    assert remove_stale_temporaries(dest) == [leftover]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.npz"]
