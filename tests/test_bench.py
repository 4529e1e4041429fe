"""The benchmark's correctness-check path on tiny workloads (no timing is asserted, ever)."""

import numpy as np
import pytest

from catlab import bench

TINY_CONV = [("tiny", 2, 3, 9, 8, 4, 3, 3, 1, 1), ("tiny strided", 1, 5, 9, 9, 6, 3, 3, 2, 1)]
TINY_OPS = [
    ("tiny max", "max_pool", (2, 3, 8, 8), (2, 2, 0)),
    ("tiny avg", "avg_pool", (1, 2, 7, 7), (3, 2, 1)),
    ("tiny relu", "relu", (2, 3, 4, 4), None),
    ("tiny linear", "linear", (3, 10), 4),
]


def test_numpy_baseline_matches_catlab():
    errs = bench.check_conv(TINY_CONV)
    assert len(errs) == 2 and all(e < 1e-5 for e in errs)


def test_ops_run_and_agree_with_torch_when_installed():
    torch = pytest.importorskip("torch")
    errs = bench.check_ops(TINY_OPS, torch=torch)
    assert len(errs) == 4 and all(e < 1e-5 for e in errs)
    errs = bench.check_conv(TINY_CONV, torch=torch)
    assert all(e < 1e-5 for e in errs)


def test_a_wrong_contender_is_caught():
    x, w, b, dy = bench.make_conv_data(*TINY_CONV[0][1:])
    cont = bench.conv_contenders(x, w, b, dy, 1, 1)
    f, bwd = cont["numpy"]
    cont["numpy"] = (lambda: f() * 1.01, bwd)
    with pytest.raises(AssertionError, match="numpy forward"):
        bench.check_contenders("tiny", cont, 1e-4)


def test_numpy_im2col_by_hand():
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    cols, (P, Q) = bench.numpy_im2col(x, 2, 2, 1, 0)
    assert (P, Q) == (2, 2)
    np.testing.assert_array_equal(cols[0], [0.0, 1.0, 3.0, 4.0])  # top-left window
    np.testing.assert_array_equal(cols[3], [4.0, 5.0, 7.0, 8.0])  # bottom-right window


def test_cli_quick_path_writes_json(tmp_path, monkeypatch, capsys):
    """The command line runs end to end on tiny workloads and writes valid JSON atomically."""
    import json

    monkeypatch.setattr(bench, "CONV_WORKLOADS", [("LeNet tiny", 64, 1, 6, 6, 2, 3, 3, 1, 1)])
    monkeypatch.setattr(bench, "OP_WORKLOADS", [("relu tiny", "relu", (64, 2, 3, 3), None)])
    out = tmp_path / "bench.json"
    bench.main(["--quick", "--repeats", "1", "--matmul-size", "64", "--json", str(out)])
    data = json.loads(out.read_text())
    assert data["conv"][0]["name"] == "LeNet tiny" and data["conv"][0]["catlab"]["forward_s"] > 0
    assert data["ops"][0]["kind"] == "relu"
    assert "ok" in capsys.readouterr().out
