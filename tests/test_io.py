"""Atomic writes: a failed write leaves the old file and no temporary file behind."""

import pytest

from catlab._io import atomic_write


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
