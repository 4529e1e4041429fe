"""The colour network: its data set, the shipped weights and their recorded accuracy, retraining."""

import json
import zipfile

import numpy as np
import pytest

pytest.importorskip("skimage")
pytest.importorskip("sklearn")

from catlab import checkpoint, pretrained, train


@pytest.fixture(scope="module")
def record():
    return pretrained.recorded_accuracy()


@pytest.fixture(scope="module")
def patches(record):
    r = record["recipe"]
    return pretrained.colour_patches(r["n_train"], r["n_test"], seed=r["seed"])


# -- the data set ---------------------------------------------------------------


def _find(photo, patch):
    """Every (row, col) where the (3, 32, 32) patch occurs in the (H, W, 3) photo."""
    chw = photo.transpose(2, 0, 1)
    H, W = photo.shape[:2]
    rows, cols = np.nonzero(np.all(photo[: H - 31, : W - 31] == patch[:, 0, 0], axis=-1))
    return [(r, c) for r, c in zip(rows, cols) if np.array_equal(chw[:, r : r + 32, c : c + 32], patch)]


def test_patches_come_from_disjoint_parts_of_their_photo():
    (xtr, ytr), (xte, yte) = pretrained.colour_patches(n_train=3, n_test=2, seed=5)
    photos = pretrained.photos()
    assert xtr.shape == (30, 3, 32, 32) and xte.shape == (20, 3, 32, 32)
    assert xtr.dtype == xte.dtype == np.float32
    assert ytr.tolist() == [k for k in range(10) for _ in range(3)]
    assert yte.tolist() == [k for k in range(10) for _ in range(2)]
    for x, y, part in ((xtr, ytr, "train"), (xte, yte, "test")):
        for patch, label in zip(x, y):
            photo = photos[label]
            cut = int(round(photo.shape[1] * 2 / 3))
            where = _find(photo, patch)
            assert where, "a patch was not found in the photo of its label"
            if part == "train":  # the whole patch left of the cut ...
                assert any(c + 32 <= cut for _, c in where)
            else:  # ... or right of it
                assert any(c >= cut for _, c in where)


def test_photos_are_in_unit_range_and_downsampled_by_block_means():
    photos = pretrained.photos()
    assert len(photos) == len(pretrained.PHOTOS) == 10
    for p in photos:
        assert p.ndim == 3 and p.shape[2] == 3 and p.dtype == np.float32
        assert 0.0 <= p.min() and p.max() <= 1.0
        assert 100 <= min(p.shape[:2]) and max(p.shape[:2]) <= 250
    from skimage import data

    coffee = data.coffee()  # factor 4: the top-left output pixel is the mean of a 4x4 block
    np.testing.assert_allclose(photos[2][0, 0], coffee[:4, :4].reshape(16, 3).mean(axis=0) / 255, rtol=1e-6)
    cat = data.chelsea().astype(np.float64) / 255  # (300, 451, 3) -> (150, 225, 3): last column dropped
    assert photos[0].shape == (150, 225, 3)
    np.testing.assert_allclose(photos[0][3, 7], cat[6:8, 14:16].mean(axis=(0, 1)), rtol=1e-6)


def test_centre_colours_removes_each_images_mean_colour():
    x = np.random.default_rng(0).random((4, 3, 6, 5)).astype(np.float32)
    before = x.copy()
    y = pretrained.centre_colours(x)
    np.testing.assert_array_equal(x, before)
    assert y.shape == x.shape and y.dtype == np.float32
    np.testing.assert_allclose(y.mean(axis=(2, 3)), 0, atol=1e-6)
    np.testing.assert_allclose(x[1, 2] - y[1, 2], x[1, 2].mean(), rtol=1e-6)  # one constant per channel
    np.testing.assert_array_equal(pretrained.centre_colours(x[1]), y[1])  # (C, H, W) too
    with pytest.raises(TypeError, match="x must be a float32 or float64"):
        pretrained.centre_colours(np.zeros((3, 4, 4), np.uint8))
    with pytest.raises(ValueError, match=r"x must be \(N, C, H, W\) or \(C, H, W\)"):
        pretrained.centre_colours(np.zeros((4, 4), np.float32))


def test_patches_are_reproducible_and_depend_on_the_seed():
    a = pretrained.colour_patches(2, 2, seed=1)
    b = pretrained.colour_patches(2, 2, seed=1)
    c = pretrained.colour_patches(2, 2, seed=2)
    np.testing.assert_array_equal(a[0][0], b[0][0])
    np.testing.assert_array_equal(a[1][0], b[1][0])
    assert not np.array_equal(a[0][0], c[0][0])


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(n_train=0), ValueError, "n_train must be >= 1, got 0"),
        (dict(n_test=-1), ValueError, "n_test must be >= 1"),
        (dict(n_train=2.5), TypeError, "n_train must be an integer, got float"),
        (dict(seed=True), TypeError, "seed must be an integer"),
        (dict(seed=-1), ValueError, "seed must be >= 0"),
    ],
)
def test_patches_reject_bad_arguments(kwargs, error, words):
    with pytest.raises(error, match=words):
        pretrained.colour_patches(**kwargs)


def test_flips_mirror_some_patches_and_leave_the_input_alone():
    x = np.arange(2 * 1 * 2 * 3, dtype=np.float32).reshape(2, 1, 2, 3).repeat(50, axis=0)
    before = x.copy()
    y = pretrained._flips(x, np.random.default_rng(0))
    np.testing.assert_array_equal(x, before)
    mirrored = [np.array_equal(b, a[..., ::-1]) for a, b in zip(x, y)]
    same = [np.array_equal(b, a) for a, b in zip(x, y)]
    assert all(m or s for m, s in zip(mirrored, same))
    assert 20 < sum(mirrored) < 80


# -- the architecture -------------------------------------------------------------


def test_architecture_shapes_and_keys():
    net = pretrained.colour_net_architecture()
    assert list(net.state_dict()) == [
        "0.weight",
        "0.bias",
        "3.weight",
        "3.bias",
        "6.weight",
        "6.bias",
        "9.weight",
        "9.bias",
    ]
    h = np.zeros((2, 3, 32, 32), np.float32)
    shapes = []
    for layer in net:
        h = layer(h)
        shapes.append(h.shape[1:])
    assert shapes == [
        (16, 28, 28),
        (16, 28, 28),
        (16, 14, 14),
        (32, 10, 10),
        (32, 10, 10),
        (32, 5, 5),
        (64, 3, 3),
        (64, 3, 3),
        (576,),
        (10,),
    ]
    a, b = pretrained.colour_net_architecture(rng=3), pretrained.colour_net_architecture(rng=3)
    np.testing.assert_array_equal(a[0].weight.data, b[0].weight.data)


# -- the shipped weights ----------------------------------------------------------


def test_shipped_files_are_small_and_plain_arrays():
    assert pretrained.WEIGHTS.is_file()
    assert pretrained.WEIGHTS.stat().st_size < 5_000_000
    with np.load(pretrained.WEIGHTS, allow_pickle=False) as z:
        assert sorted(z.files) == [
            "0.bias",
            "0.weight",
            "3.bias",
            "3.weight",
            "6.bias",
            "6.weight",
            "9.bias",
            "9.weight",
        ]
        assert all(z[k].dtype == np.float32 for k in z.files)


@pytest.mark.skipif(
    __import__("numba").config.DISABLE_JIT,
    reason="NUMBA_DISABLE_JIT (coverage run): the whole test set through pure-Python kernels takes hours",
)
def test_shipped_weights_reproduce_the_recorded_accuracy(record, patches):
    (xtr, ytr), (xte, yte) = patches
    net = pretrained.colour_net()
    assert not net.training
    test_acc = train.evaluate(net, pretrained.centre_colours(xte), yte)["accuracy"]
    train_acc = train.evaluate(net, pretrained.centre_colours(xtr), ytr)["accuracy"]
    assert test_acc == record["test_accuracy"]
    assert train_acc == record["train_accuracy"]
    # and the record is worth shipping: far above chance (10%) on the unseen right-hand parts
    assert test_acc > 0.6 and train_acc >= test_acc


@pytest.mark.skipif(
    __import__("numba").config.DISABLE_JIT,
    reason="NUMBA_DISABLE_JIT (coverage run): the whole test set through pure-Python kernels takes hours",
)
def test_shipped_weights_match_torch(patches):
    torch = pytest.importorskip("torch")
    from catlab import interop

    net = pretrained.colour_net()
    x = pretrained.centre_colours(patches[1][0][::50])
    with torch.no_grad():
        expected = interop.to_torch(net).eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(net(x), expected, rtol=1e-4, atol=1e-4)


def test_missing_weights_say_how_to_make_them(tmp_path):
    with pytest.raises(FileNotFoundError):
        pretrained.colour_net(tmp_path / "nothing.npz")
    with pytest.raises(FileNotFoundError, match="python -m catlab.pretrained --out"):
        pretrained.recorded_accuracy(tmp_path / "nothing.npz")


def test_bad_weight_files_are_rejected_clearly(tmp_path):
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"not a zip file")
    with pytest.raises(ValueError):
        pretrained.colour_net(corrupt)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, **{"0.weight": np.zeros((16, 3, 5, 5), np.float32)})
    with pytest.raises(KeyError, match="missing keys"):
        pretrained.colour_net(wrong)
    shape = tmp_path / "shape.npz"
    state = pretrained.colour_net_architecture().state_dict()
    state["0.weight"] = np.zeros((16, 3, 3, 3), np.float32)
    np.savez(shape, **state)
    with pytest.raises(ValueError, match=r"0.weight.*\(16, 3, 3, 3\).*\(16, 3, 5, 5\)"):
        pretrained.colour_net(shape)
    with pytest.raises(TypeError, match="path must be a file path"):
        pretrained.colour_net(42)


def test_bad_accuracy_records_are_rejected_clearly(tmp_path):
    path = tmp_path / "w.npz"
    path.with_suffix(".json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        pretrained.recorded_accuracy(path)
    path.with_suffix(".json").write_text(json.dumps({"train_accuracy": 1.0}))
    with pytest.raises(ValueError, match="lacks 'test_accuracy'"):
        pretrained.recorded_accuracy(path)


# -- retraining -------------------------------------------------------------------


def test_retrain_smoke_loss_decreases_and_is_reproducible():
    _, info = pretrained.retrain(n_train=8, n_test=2, epochs=4, batch_size=16, lr=3e-3, seed=0)
    assert len(info["losses"]) == 4
    assert info["losses"][-1] < info["losses"][0]
    assert info["losses"][0] < 3.0  # starts near ln(10) = 2.30, not diverging
    _, again = pretrained.retrain(n_train=8, n_test=2, epochs=1, batch_size=16, lr=3e-3, seed=0)
    assert again["losses"][0] == info["losses"][0]


def test_main_writes_weights_and_record_atomically(tmp_path, capsys):
    out = tmp_path / "net.npz"
    assert pretrained.main(["--out", str(out), "--epochs", "1", "--n-train", "2"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.json", "net.npz"]  # no temporary files left
    assert zipfile.is_zipfile(out)
    net = pretrained.colour_net(out)
    rec = pretrained.recorded_accuracy(out)
    assert rec["recipe"]["epochs"] == 1 and rec["recipe"]["n_train"] == 2
    (xtr, ytr), _ = pretrained.colour_patches(2, rec["recipe"]["n_test"], seed=rec["recipe"]["seed"])
    assert train.evaluate(net, pretrained.centre_colours(xtr), ytr)["accuracy"] == rec["train_accuracy"]
    assert "wrote" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        pretrained.main(["--out", str(tmp_path / "no" / "such" / "dir.npz")])
    checkpoint.load(pretrained.colour_net_architecture(), out)  # an ordinary checkpoint
