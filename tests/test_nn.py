"""Layer objects: shapes, initialisation, state_dict, modes."""

import numpy as np
import pytest

from catlab import nn


def lenet(seed=0):
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2, rng=seed), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5, rng=seed + 1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120, rng=seed + 2), nn.ReLU(), nn.Linear(120, 84, rng=seed + 3), nn.ReLU(),
        nn.Linear(84, 10, rng=seed + 4),
    )


def test_conv2d_layer_shape_from_the_issue():
    assert nn.Conv2d(3, 6, 5)(np.zeros((1, 3, 32, 32), dtype=np.float32)).shape == (1, 6, 28, 28)


def test_next_layer_filters_must_be_5x5x6():
    first, second = nn.Conv2d(3, 6, 5, rng=0), nn.Conv2d(6, 10, 5, rng=1)
    assert second.weight.shape[1:] == (6, 5, 5)
    y = second(first(np.zeros((1, 3, 32, 32), dtype=np.float32)))
    assert y.shape == (1, 10, 24, 24)


def test_init_bounds_follow_torch_and_seed_reproduces():
    a, b = nn.Conv2d(3, 16, 5, rng=7), nn.Conv2d(3, 16, 5, rng=7)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    bound = 1 / np.sqrt(3 * 5 * 5)
    assert np.abs(a.weight.data).max() <= bound and np.abs(a.weight.data).max() > 0.9 * bound
    assert np.abs(a.bias.data).max() <= bound
    assert a.weight.data.dtype == np.float32
    c = nn.Conv2d(3, 16, 5, rng=8)
    assert not np.array_equal(a.weight.data, c.weight.data)
    gen = np.random.default_rng(3)
    assert nn.Linear(4, 2, rng=gen).weight.shape == (2, 4)


def test_lenet_state_dict_keys_shapes_and_round_trip():
    net = lenet()
    sd = net.state_dict()
    assert list(sd) == ["0.weight", "0.bias", "3.weight", "3.bias", "7.weight", "7.bias",
                        "9.weight", "9.bias", "11.weight", "11.bias"]
    assert sd["3.weight"].shape == (16, 6, 5, 5) and sd["7.weight"].shape == (120, 400)
    other = lenet(seed=100)
    x = np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32)
    assert not np.allclose(other(x), net(x))
    other.load_state_dict(sd)
    np.testing.assert_array_equal(other(x), net(x))
    sd["0.weight"][...] = 0  # state_dict returns copies
    assert np.any(net[0].weight.data != 0)


def test_load_state_dict_names_the_mismatch_and_changes_nothing():
    net = lenet()
    before = net.state_dict()
    bad = dict(before)
    bad["9.weight"] = np.zeros((84, 121), dtype=np.float32)
    with pytest.raises(ValueError, match=r"'9.weight'.*\(84, 121\).*\(84, 120\)"):
        net.load_state_dict(bad)
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    with pytest.raises(KeyError, match="missing keys"):
        net.load_state_dict({"0.weight": before["0.weight"]})


def test_backward_stores_gradients_and_zero_grad_clears():
    net = lenet()
    x = np.random.default_rng(1).random((2, 1, 28, 28), dtype=np.float32)
    y = net(x)
    dx = net.backward(np.ones_like(y))
    assert dx.shape == x.shape
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.shape == p.data.shape and p.grad.dtype == np.float32, name
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_eval_mode_keeps_nothing_for_backward():
    net = lenet().eval()
    assert not net.training and not net[0].training
    net(np.zeros((1, 1, 28, 28), dtype=np.float32))
    with pytest.raises(RuntimeError, match="train"):
        net.backward(np.ones((1, 10), dtype=np.float32))
    net.train()
    assert net[3].training


def test_float64_layers_and_mixed_dtype_error():
    conv = nn.Conv2d(2, 2, 3, dtype=np.float64, rng=0)
    assert conv(np.zeros((1, 2, 5, 5))).dtype == np.float64
    with pytest.raises(TypeError, match="float32.*float64|float64.*float32"):
        conv(np.zeros((1, 2, 5, 5), dtype=np.float32))


def test_sequential_rejects_non_modules():
    with pytest.raises(TypeError, match="layer 1"):
        nn.Sequential(nn.ReLU(), lambda x: x)


def test_parameter_count_of_lenet():
    net = lenet()
    count = sum(p.data.size for p in net.parameters())
    assert count == (6 * 25 + 6) + (16 * 6 * 25 + 16) + (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)
