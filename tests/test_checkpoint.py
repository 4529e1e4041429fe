"""Checkpoints: round trip, atomic writes, no pickle, mismatched architectures."""

import os

import numpy as np
import pytest

from catlab import checkpoint, nn


def lenet(seed=0, dtype=np.float32):
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2, rng=seed, dtype=dtype),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5, rng=seed + 1, dtype=dtype),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(400, 120, rng=seed + 2, dtype=dtype),
        nn.ReLU(),
        nn.Linear(120, 84, rng=seed + 3, dtype=dtype),
        nn.ReLU(),
        nn.Linear(84, 10, rng=seed + 4, dtype=dtype),
    )


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(np.array_equal(sa[k], sb[k]) for k in sa)


def test_round_trip_restores_weights_and_outputs(tmp_path):
    net, other = lenet(0), lenet(10)
    assert not same_weights(net, other)
    path = checkpoint.save(net, tmp_path / "lenet.npz")
    assert path == tmp_path / "lenet.npz" and os.listdir(tmp_path) == ["lenet.npz"]
    assert checkpoint.load(other, path) is other
    assert same_weights(net, other)
    x = np.random.default_rng(0).random((2, 1, 28, 28), dtype=np.float32)
    np.testing.assert_array_equal(net.eval()(x), other.eval()(x))


def test_file_is_plain_npz_with_state_dict_keys(tmp_path):
    net = lenet()
    checkpoint.save(net, tmp_path / "c.npz")
    with np.load(tmp_path / "c.npz", allow_pickle=False) as data:
        assert list(data.files) == list(net.state_dict())
        np.testing.assert_array_equal(data["3.weight"], net[3].weight.data)


def test_loading_into_another_architecture_names_the_key_and_shapes_and_changes_nothing(tmp_path):
    checkpoint.save(lenet(), tmp_path / "c.npz")
    wide = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2, rng=0),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 32, 5, rng=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(800, 120, rng=2),
        nn.ReLU(),
        nn.Linear(120, 84, rng=3),
        nn.ReLU(),
        nn.Linear(84, 10, rng=4),
    )
    before = wide.state_dict()
    with pytest.raises(ValueError, match=r"'3.weight'.*\(16, 6, 5, 5\).*\(32, 6, 5, 5\)"):
        checkpoint.load(wide, tmp_path / "c.npz")
    assert all(np.array_equal(v, before[k]) for k, v in wide.state_dict().items())
    with pytest.raises(KeyError, match="unexpected keys"):
        checkpoint.load(nn.Sequential(nn.Conv2d(1, 6, 5, padding=2)), tmp_path / "c.npz")


def test_failed_save_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "c.npz"
    checkpoint.save(lenet(0), path)
    old = path.read_bytes()

    def broken_savez(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save(lenet(5), path)
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["c.npz"]


def test_overwrite_replaces_the_file(tmp_path):
    path = tmp_path / "c.npz"
    checkpoint.save(lenet(0), path)
    checkpoint.save(lenet(5), path)
    assert same_weights(checkpoint.load(lenet(9), path), lenet(5))
    assert os.listdir(tmp_path) == ["c.npz"]


def test_float64_model_loads_a_float32_checkpoint_in_its_own_dtype(tmp_path):
    checkpoint.save(lenet(0), tmp_path / "c.npz")
    net64 = checkpoint.load(lenet(3, dtype=np.float64), tmp_path / "c.npz")
    assert net64[0].weight.data.dtype == np.float64
    np.testing.assert_array_equal(net64[0].weight.data, lenet(0)[0].weight.data.astype(np.float64))


def test_bad_files(tmp_path):
    net = lenet()
    with pytest.raises(FileNotFoundError, match="not found"):
        checkpoint.load(net, tmp_path / "missing.npz")
    good = tmp_path / "good.npz"
    checkpoint.save(net, good)
    (tmp_path / "trunc.npz").write_bytes(good.read_bytes()[:2000])
    (tmp_path / "text.npz").write_text("not a checkpoint")
    np.save(tmp_path / "single.npy", np.zeros(3))
    np.savez(tmp_path / "pickled.npz", **{"0.weight": np.array([{"a": 1}], dtype=object)})
    before = net.state_dict()
    for name in ["trunc.npz", "text.npz", "single.npy", "pickled.npz"]:
        with pytest.raises(ValueError, match="not a readable catlab checkpoint"):
            checkpoint.load(net, tmp_path / name)
    assert same_weights(net, lenet())
    assert all(np.array_equal(v, before[k]) for k, v in net.state_dict().items())


def test_bad_arguments(tmp_path):
    with pytest.raises(TypeError, match="path"):
        checkpoint.save(lenet(), 3)
    with pytest.raises(FileNotFoundError, match="directory"):
        checkpoint.save(lenet(), tmp_path / "no" / "c.npz")
    with pytest.raises(TypeError, match="model"):
        checkpoint.save([1, 2], tmp_path / "c.npz")
    with pytest.raises(TypeError, match="model"):
        checkpoint.load({"a": 1}, tmp_path / "c.npz")
    with pytest.raises(TypeError, match="float"):
        checkpoint.save({"w": np.array(["a", "b"])}, tmp_path / "c.npz")
    assert os.listdir(tmp_path) == []


def test_buffers_round_trip_and_their_kind_is_checked(tmp_path):
    """BatchNorm2d's running statistics and int64 batch count are saved and checked like parameters."""
    model = nn.Sequential(nn.Conv2d(1, 2, 3, rng=0), nn.BatchNorm2d(2))
    model.train()
    model(np.random.default_rng(0).random((4, 1, 5, 5)).astype(np.float32))  # updates the buffers
    path = checkpoint.save(model, tmp_path / "bn.npz")
    fresh = checkpoint.load(nn.Sequential(nn.Conv2d(1, 2, 3, rng=1), nn.BatchNorm2d(2)), path)
    for (k, a), (k2, b) in zip(model.state_dict().items(), fresh.state_dict().items()):
        assert k == k2 and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    state = dict(model.state_dict())
    state["1.num_batches_tracked"] = np.array(1.0)  # a float where the model keeps an integer
    np.savez(tmp_path / "float_count.npz", **state)
    target = nn.Sequential(nn.Conv2d(1, 2, 3, rng=1), nn.BatchNorm2d(2))
    before = target.state_dict()
    with pytest.raises(ValueError, match=r"float_count\.npz.*num_batches_tracked.*integer"):
        checkpoint.load(target, tmp_path / "float_count.npz")
    for k, v in target.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
