"""Layer objects: shapes, initialisation, state_dict, training/eval modes, gradients, and torch's layers."""

import numpy as np
import pytest

from catlab import functional as F
from catlab import nn
from catlab.gradcheck import gradcheck_layer

TOL = 1e-6  # gradient checks, float64


def lenet(seed=0):
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
    assert list(sd) == [
        "0.weight",
        "0.bias",
        "3.weight",
        "3.bias",
        "7.weight",
        "7.bias",
        "9.weight",
        "9.bias",
        "11.weight",
        "11.bias",
    ]
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


def test_sequential_state_dict_keys_and_shapes_match_torch():
    torch = pytest.importorskip("torch")
    mine = nn.Sequential(
        nn.Conv2d(3, 6, 5, padding=2, rng=0),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv1d(6, 2, 3, rng=0),
        nn.Conv2d(6, 4, 3, bias=False, rng=1),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16, 10, rng=2),
    )
    theirs = torch.nn.Sequential(
        torch.nn.Conv2d(3, 6, 5, padding=2),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv1d(6, 2, 3),
        torch.nn.Conv2d(6, 4, 3, bias=False),
        torch.nn.AvgPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(16, 10),
    )
    ts = theirs.state_dict()
    ms = mine.state_dict()
    assert list(ms) == list(ts)
    assert all(ms[k].shape == tuple(ts[k].shape) for k in ms)


def test_default_init_has_torch_bounds():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    theirs = torch.nn.Conv2d(6, 16, 5)
    mine = nn.Conv2d(6, 16, 5, rng=0)
    tb = theirs.weight.detach().abs().max().item()
    mb = np.abs(mine.weight.data).max()
    bound = 1 / np.sqrt(6 * 25)
    assert tb <= bound and mb <= bound and mb > 0.95 * bound and tb > 0.95 * bound


def test_lenet_outputs_and_gradients_match_torch_after_moving_weights(rng):
    torch = pytest.importorskip("torch")

    def mine():
        return nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2, rng=0),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5, rng=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(400, 120, rng=2),
            nn.ReLU(),
            nn.Linear(120, 84, rng=3),
            nn.ReLU(),
            nn.Linear(84, 10, rng=4),
        )

    tnet = torch.nn.Sequential(
        torch.nn.Conv2d(1, 6, 5, padding=2),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(6, 16, 5),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(400, 120),
        torch.nn.ReLU(),
        torch.nn.Linear(120, 84),
        torch.nn.ReLU(),
        torch.nn.Linear(84, 10),
    ).double()
    net = mine().astype(np.float64)
    # catlab -> torch
    tnet.load_state_dict({k: torch.tensor(v) for k, v in net.state_dict().items()})
    x = rng.random((4, 1, 28, 28))
    labels = np.array([0, 3, 9, 3])
    xt = torch.tensor(x, requires_grad=True)
    loss_t = torch.nn.functional.cross_entropy(tnet(xt), torch.tensor(labels))
    loss_t.backward()
    loss, dz = F.softmax_cross_entropy(net(x), labels)
    dx = net.backward(dz)
    assert abs(loss - loss_t.item()) < 1e-12
    np.testing.assert_allclose(dx, xt.grad.numpy(), atol=1e-12)
    tgrads = {k: p.grad.numpy() for k, p in tnet.named_parameters()}
    for k, p in net.named_parameters():
        np.testing.assert_allclose(p.grad, tgrads[k], atol=1e-12, err_msg=k)
    # torch -> catlab
    other = mine().astype(np.float64)
    other.load_state_dict({k: v.detach().numpy() for k, v in tnet.state_dict().items()})
    np.testing.assert_allclose(other(x), tnet(torch.tensor(x)).detach().numpy(), atol=1e-12)


@pytest.mark.parametrize(
    "make,shape",
    [
        (lambda: nn.Conv2d(3, 4, 3, stride=2, padding=1, rng=0), (2, 3, 7, 7)),
        (lambda: nn.Conv2d(4, 4, (2, 3), groups=2, dilation=(1, 2), bias=False, rng=0), (2, 4, 6, 8)),
        (lambda: nn.Conv1d(2, 3, 3, padding="same", rng=0), (3, 2, 9)),
        (lambda: nn.MaxPool2d(2), (2, 3, 6, 6)),
        (lambda: nn.AvgPool2d(3, stride=2, padding=1), (2, 3, 7, 6)),
        (lambda: nn.ReLU(), (3, 5)),
        (lambda: nn.Linear(5, 4, rng=0), (3, 5)),
        (lambda: nn.Flatten(), (2, 3, 2, 2)),
        (
            lambda: nn.Sequential(
                nn.Conv2d(1, 3, 3, padding=1, rng=0), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(12, 5, rng=1)
            ),
            (2, 1, 4, 4),
        ),
    ],
)
def test_layer_gradients(make, shape, rng):
    x = rng.normal(size=shape)
    x[np.abs(x) < 1e-3] = 0.5
    err = gradcheck_layer(make(), x)
    assert max(err.values()) < TOL, err
    assert "input" in err
