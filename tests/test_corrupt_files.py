"""Corrupt files: every truncation and bit flip of a real checkpoint and a real (small) CIFAR-10 archive.

Each damaged file must either raise the documented ValueError naming the file,
leaving the model as it was, or, when the damage falls on a byte that does not
matter (a zip timestamp, the gzip header's mtime), load exactly the original
data. Never another exception, never a half-changed model. Positions and bits
are seeded; the counts are bounded so the file runs in seconds.
"""

import io
import struct
import zipfile

import numpy as np
import pytest
from test_datasets import build_archive

from catlab import checkpoint, datasets, nn


def small_net(seed):
    return nn.Sequential(nn.Conv2d(1, 2, 3, rng=seed), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3, rng=seed + 1))


def lenet(seed):
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2, rng=seed),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5, rng=seed + 1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(400, 120, rng=seed + 2),
        nn.ReLU(),
        nn.Linear(120, 84, rng=seed + 3),
        nn.ReLU(),
        nn.Linear(84, 10, rng=seed + 4),
    )


def snapshot(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


def equal(state, model):
    now = model.state_dict()
    return list(now) == list(state) and all(np.array_equal(now[k], state[k]) for k in state)


def put(path, data):
    """Write a new file (unlinking first: overwriting in place is ten times slower on some file systems)."""
    path.unlink(missing_ok=True)
    path.write_bytes(data)


def check_damaged_checkpoint(path, data, make_model, saved, outcomes):
    """Write ``data`` to ``path``, load it into a fresh model; assert one of the two allowed outcomes."""
    put(path, data)
    model = make_model()
    before = snapshot(model)
    try:
        checkpoint.load(model, path)
    except ValueError as e:
        assert str(path) in str(e), f"the error does not name the file: {e}"
        assert equal(before, model), "a failed load changed the model"
        outcomes["error"] += 1
    else:  # the damage hit a byte that does not matter: the data must be the original
        assert equal(saved, model), "a damaged checkpoint loaded different weights without an error"
        outcomes["same"] += 1


def flip(data, pos, bit):
    b = bytearray(data)
    b[pos] ^= 1 << bit
    return bytes(b)


def structural_positions(data):
    """Byte positions of the zip structure: local headers, .npy headers, central directory, end record."""
    pos = set()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for info in zf.infolist():
            start = info.header_offset
            n_name, n_extra = struct.unpack("<HH", data[start + 26 : start + 30])
            body = start + 30 + n_name + n_extra
            pos.update(range(start, body + 128))  # local header, name, extra, the .npy magic and header
        cd = data.rfind(b"PK\x01\x02", 0, len(data))
        first_cd = min(i for i in range(len(data) - 3) if data[i : i + 4] == b"PK\x01\x02")
        assert first_cd <= cd
        pos.update(range(first_cd, len(data)))  # central directory and end-of-central-directory record
    return sorted(p for p in pos if p < len(data))


def test_every_byte_of_a_small_checkpoint_flipped_and_every_truncation(tmp_path):
    good = tmp_path / "good.npz"
    saved = snapshot(small_net(0))
    checkpoint.save(small_net(0), good)
    data = good.read_bytes()
    bad = tmp_path / "bad.npz"
    rng = np.random.default_rng(14)
    outcomes = {"error": 0, "same": 0}
    for pos in range(len(data)):  # every byte, a random bit of each
        check_damaged_checkpoint(bad, flip(data, pos, int(rng.integers(8))), lambda: small_net(5), saved, outcomes)
    for n in range(len(data)):  # every truncation
        check_damaged_checkpoint(bad, data[:n], lambda: small_net(5), saved, outcomes)
    assert outcomes["error"] > 0.5 * sum(outcomes.values()), outcomes
    assert outcomes["same"] > 0, outcomes  # zip timestamps, local sizes and CRC: flips there are harmless


def test_lenet_checkpoint_structure_flips_and_truncations(tmp_path):
    good = tmp_path / "good.npz"
    saved = snapshot(lenet(0))
    checkpoint.save(lenet(0), good)
    data = good.read_bytes()
    bad = tmp_path / "bad.npz"
    rng = np.random.default_rng(1414)
    outcomes = {"error": 0, "same": 0}
    positions = structural_positions(data)  # about 3,000 bytes of 250 kB
    assert len(positions) > 1000
    for pos in rng.choice(positions, size=300, replace=False):
        check_damaged_checkpoint(bad, flip(data, int(pos), int(rng.integers(8))), lambda: lenet(7), saved, outcomes)
    for pos in rng.integers(0, len(data), size=60):  # anywhere, mostly in the weights
        check_damaged_checkpoint(bad, flip(data, int(pos), int(rng.integers(8))), lambda: lenet(7), saved, outcomes)
    for n in rng.integers(0, len(data), size=40):
        check_damaged_checkpoint(bad, data[: int(n)], lambda: lenet(7), saved, outcomes)
    # many header bytes are ignored by zipfile (local sizes, CRC, times, zip64 extras): loads are fine there
    assert outcomes["error"] > 0.5 * sum(outcomes.values()), outcomes
    assert outcomes["same"] > 0, outcomes


def npz_with_header(path, state, key, header):
    """An .npz of ``state`` whose member ``key`` has the .npy header dict ``header`` (valid zip, right CRCs)."""
    with zipfile.ZipFile(path, "w") as zf:
        for k, v in state.items():
            if k == key:
                h = header + b" " * (-(10 + len(header) + 1) % 64) + b"\n"
                zf.writestr(k + ".npy", b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h + v.tobytes())
            else:
                buf = io.BytesIO()
                np.save(buf, v)
                zf.writestr(k + ".npy", buf.getvalue())


@pytest.mark.parametrize(
    "header, match",
    [
        (b"{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000,), }", r"\(1000000000000,?\)"),
        (b"{'descr': '<f4', 'fortran_order': False, 'shape': (10**12,), }", "header"),
        (b"{'descr': '|O', 'fortran_order': False, 'shape': (6, 1, 5, 5), }", "dtype object"),
        (b"{'descr': '<i4', 'fortran_order': False, 'shape': (6, 1, 5, 5), }", "dtype int32"),
        (b"{'descr': '<f4', 'fortran_order': False, 'shape': (6, 1, 5, 4), }", r"\(6, 1, 5, 4\)"),
        (b"{'descr': '<f4', 'fortran_order': False, 'shape': (6, 1, 5, 5), ", "header"),
    ],
)
def test_absurd_npy_headers_are_refused_before_any_data_is_read(tmp_path, header, match):
    """A header claiming 10**12 floats raised a bare MemoryError before (issue 14, item 4)."""
    bad = tmp_path / "bad.npz"
    npz_with_header(bad, lenet(0).state_dict(), "0.weight", header)
    model = lenet(3)
    before = snapshot(model)
    with pytest.raises(ValueError, match=match) as err:
        checkpoint.load(model, bad)
    assert str(bad) in str(err.value)
    assert equal(before, model)


@pytest.mark.parametrize(
    "field, mask",
    [
        ("flags", 0x01),  # encrypted: zipfile raised RuntimeError
        ("flags", 0x20),  # 'compressed patched data': NotImplementedError
        ("flags", 0x40),  # strong encryption
        ("method", 0x01),  # stored (0) -> 1, 'shrunk': NotImplementedError
        ("method", 0x02),
        ("method", 0x08),  # stored -> deflate: zlib.error
        ("method", 0x0C),  # -> 12, bzip2 (two bits, still a method zipfile knows)
        ("method", 0x0E),  # -> 14, lzma: lzma.LZMAError, not an OSError
    ],
)
def test_central_directory_flag_and_method_flips(tmp_path, field, mask):
    """The flips that raised a bare NotImplementedError or RuntimeError before (issue 14, item 4)."""
    good = tmp_path / "good.npz"
    checkpoint.save(lenet(0), good)
    data = bytearray(good.read_bytes())
    cd = data.index(b"PK\x01\x02")
    assert data[cd + 10] == 0  # stored, as np.savez writes
    data[cd + {"flags": 8, "method": 10}[field]] ^= mask
    bad = tmp_path / "bad.npz"
    bad.write_bytes(bytes(data))
    model = lenet(3)
    before = snapshot(model)
    with pytest.raises(ValueError, match="not a readable catlab checkpoint") as err:
        checkpoint.load(model, bad)
    assert str(bad) in str(err.value)
    assert equal(before, model)


# ---------------------------------------------------------------------------- CIFAR-10 archive


def test_every_gzip_header_and_trailer_flip_and_random_flips_and_truncations_of_an_archive(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    good = src / "cifar-10-binary.tar.gz"
    _, train_x, train_y, _, _ = build_archive(good, np.random.default_rng(10), per_batch=1, n_test=2)
    data = good.read_bytes()
    root = tmp_path / "root"
    root.mkdir()
    bad = root / "cifar-10-binary.tar.gz"
    want_x = train_x.astype(np.float32) / np.float32(255.0)
    rng = np.random.default_rng(1010)
    outcomes = {"error": 0, "same": 0}

    def check(damaged):
        put(bad, damaged)
        try:
            x, y = datasets.cifar10(root, md5=None)
        except ValueError as e:
            assert str(bad) in str(e), f"the error does not name the file: {e}"
            outcomes["error"] += 1
        else:
            np.testing.assert_array_equal(x, want_x)
            np.testing.assert_array_equal(y, train_y)
            outcomes["same"] += 1

    ends = list(range(10)) + list(range(len(data) - 8, len(data)))  # gzip header and CRC/length trailer
    for pos in ends:
        for bit in range(8):
            check(flip(data, pos, bit))
    for pos in rng.integers(10, len(data) - 8, size=300):  # the deflate stream
        check(flip(data, int(pos), int(rng.integers(8))))
    for n in list(range(40)) + sorted(rng.integers(40, len(data), size=60).tolist()):
        check(data[:n])
    # the test batch is not read with train=True, but its bytes are in the CRC: flips there fail too
    assert outcomes["error"] > 0.9 * sum(outcomes.values()), outcomes
    assert outcomes["same"] > 0, outcomes  # mtime, extra flags and OS bytes of the gzip header


def test_a_flip_in_a_batch_not_asked_for_is_still_an_error(tmp_path):
    """Before, md5=None and a flip in the test batch loaded the training set silently."""
    good = tmp_path / "cifar-10-binary.tar.gz"
    build_archive(good, np.random.default_rng(11), per_batch=1, n_test=1)
    data = good.read_bytes()
    # flipping a bit inside the final deflate data typically keeps the stream decodable
    errors = 0
    for pos in range(len(data) - 40, len(data) - 8):
        put(good, flip(data, pos, 0))
        with pytest.raises(ValueError, match="truncated or corrupt"):
            datasets.cifar10(tmp_path, md5=None)
        errors += 1
    assert errors == 32
