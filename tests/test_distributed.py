"""catlab.distributed: two gloo processes train LeNet exactly as one process does.

The argument checks run without torch. The training test (needs torch) starts
two processes and compares their weights with an independent single-process
torch loop written here, which also shows that the comparison can fail: the
same loop with the per-process batch as the global batch gives other weights.
"""

import numpy as np
import pytest

from catlab import datasets, nn
from catlab.bench_train import lenet5
from catlab.distributed import free_port, train_data_parallel
from catlab.train import evaluate

N_TRAIN, N_TEST, BATCH, LR, MOMENTUM, SEED = 256, 200, 32, 0.1, 0.0, 0  # the chapter's settings


@pytest.fixture(scope="module")
def mnist():
    (x, y), (xt, yt) = datasets.mnist_sample(seed=0)
    return x[:N_TRAIN], y[:N_TRAIN], xt[:N_TEST], yt[:N_TEST]


def max_difference(a, b):
    a, b = a.state_dict(), b.state_dict()
    assert list(a) == list(b)
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


def torch_loop(torch, model, x, y, batch_size):
    """One epoch of plain single-process SGD, the samples in DistributedSampler's shuffled order."""
    from catlab.interop import from_torch_state_dict, to_torch

    torch.manual_seed(SEED)
    tnet = to_torch(model)
    opt = torch.optim.SGD(tnet.parameters(), lr=LR, momentum=MOMENTUM)
    g = torch.Generator()
    g.manual_seed(SEED + 0)  # DistributedSampler: seed + epoch
    order = torch.randperm(len(x), generator=g).numpy()
    for s in range(0, len(x), batch_size):
        idx = order[s : s + batch_size]
        loss = torch.nn.functional.cross_entropy(tnet(torch.from_numpy(x[idx])), torch.from_numpy(y[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    out = lenet5(SEED)
    out.load_state_dict(from_torch_state_dict(tnet.state_dict()))
    return out, order


def test_two_gloo_processes_give_the_weights_of_one(mnist):
    """Two DDP processes vs one plain process (the loop above, in this process) on the same global batch.

    (world_size=1 through train_data_parallel runs in chapter 18, under nbval; here one spawn of two
    processes keeps the test under a minute.)
    """
    torch = pytest.importorskip("torch")
    x, y, xt, yt = mnist
    model = lenet5(SEED)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    two = train_data_parallel(
        model, x, y, world_size=2, epochs=1, batch_size=BATCH, lr=LR, momentum=MOMENTUM, seed=SEED
    )
    one, order = torch_loop(torch, model, x, y, BATCH)

    # the caller's model is untouched; the returned one is trained
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    assert max_difference(two["model"], model) > 1e-2

    # DistributedSampler: every other sample of the single process's shuffled order, each sample once
    shards = two["shards"][:, 0]  # (2, 128)
    assert shards.shape == (2, N_TRAIN // 2)
    assert sorted(np.concatenate(shards).tolist()) == list(range(N_TRAIN))
    np.testing.assert_array_equal(order[0::2], shards[0])
    np.testing.assert_array_equal(order[1::2], shards[1])
    assert two["losses"].shape == (2, N_TRAIN // BATCH)

    # the replicas stayed identical, and equal the single process up to float32 rounding
    assert two["replica_difference"] == 0.0
    diff = max_difference(two["model"], one)
    assert diff < 1e-5, diff
    # with the per-process batch taken as the global batch, the weights differ: the check can fail
    wrong, _ = torch_loop(torch, model, x, y, BATCH // 2)
    assert max_difference(wrong, two["model"]) > 1e-3

    # catlab's evaluation of the returned weights matches torch's
    from catlab.interop import to_torch

    ours = evaluate(two["model"], xt, yt)
    with torch.no_grad():
        logits = to_torch(two["model"])(torch.from_numpy(xt))
        theirs = torch.nn.functional.cross_entropy(logits, torch.from_numpy(yt)).item()
    np.testing.assert_allclose(two["model"](xt), logits.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours["loss"], theirs, rtol=1e-5)
    assert ours["accuracy"] == float((logits.argmax(1).numpy() == yt).mean())


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        ({"world_size": 0}, ValueError, "world_size"),
        ({"world_size": 2.0}, TypeError, "world_size"),
        ({"batch_size": 33}, ValueError, "batch_size"),
        ({"epochs": 0}, ValueError, "epochs"),
        ({"lr": 0.0}, ValueError, "lr"),
        ({"lr": "0.1"}, TypeError, "lr"),
        ({"momentum": 1.0}, ValueError, "momentum"),
        ({"seed": 1.5}, TypeError, "seed"),
        ({"threads": 0}, ValueError, "threads"),
        ({"timeout": 0}, ValueError, "timeout"),
    ],
)
def test_bad_arguments_are_named_before_any_work(kwargs, error, words):
    x = np.zeros((8, 1, 28, 28), np.float32)
    y = np.zeros(8, np.int64)
    with pytest.raises(error, match=words):
        train_data_parallel(lenet5(0), x, y, **kwargs)


def test_bad_data_is_named_before_any_work():
    model = lenet5(0)
    x = np.zeros((8, 1, 28, 28), np.float32)
    y = np.zeros(8, np.int64)
    with pytest.raises(ValueError, match="not a multiple of world_size"):
        train_data_parallel(model, x[:7], y[:7], world_size=2)
    with pytest.raises(TypeError, match="x has dtype float64"):
        train_data_parallel(model, x.astype(np.float64), y)
    with pytest.raises(ValueError, match="labels"):
        train_data_parallel(model, x, y[:6])
    with pytest.raises(TypeError, match="model must be a catlab.nn.Module"):
        train_data_parallel("lenet", x, y)


def test_a_layer_torch_cannot_build_is_named_before_processes_start():
    pytest.importorskip("torch")

    class Square(nn.Module):
        def forward(self, x):
            return x * x

    model = nn.Sequential(nn.Flatten(), Square(), nn.Linear(4, 2, rng=0))
    with pytest.raises(TypeError, match="Square"):
        train_data_parallel(model, np.zeros((4, 2, 2), np.float32), np.zeros(4, np.int64))


def test_free_port_is_bindable_on_loopback():
    import socket

    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", port))


def test_without_torch_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "torch", None)  # `import torch` now fails
    x = np.zeros((8, 1, 28, 28), np.float32)
    with pytest.raises(ImportError, match="pip install torch"):
        train_data_parallel(lenet5(0), x, np.zeros(8, np.int64))
