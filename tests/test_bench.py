"""The benchmark's check path and its tables on tiny workloads (no timing is asserted, ever)."""

import json
import re

import numpy as np
import pytest

from catlab import bench

TINY_CONV = [("tiny", 2, 3, 9, 8, 4, 3, 3, 1, 1), ("tiny strided", 1, 5, 9, 9, 6, 3, 3, 2, 1)]
TINY_UNTUNED = [
    ("tiny odd same", 1, 3, 7, 7, 4, 3, 3, 1, "same"),
    ("tiny 1x1", 2, 4, 5, 5, 3, 1, 1, 1, 0),
    ("tiny 7x7 s2", 1, 2, 11, 11, 3, 7, 7, 2, 3),
]
TINY_OPS = [
    ("tiny max", "max_pool", (2, 3, 8, 8), (2, 2, 0)),
    ("tiny avg", "avg_pool", (1, 2, 7, 7), (3, 2, 1)),
    ("tiny relu", "relu", (2, 3, 4, 4), None),
    ("tiny linear", "linear", (3, 10), 4),
    ("tiny batchnorm", "batch_norm", (4, 3, 5, 5), None),
    ("tiny dropout", "dropout", (4, 3, 5, 5), 0.5),
    ("tiny global avgpool", "adaptive_avg_pool", (2, 3, 5, 5), 1),
]


def test_numpy_baseline_matches_catlab():
    errs = bench.check_conv(TINY_CONV + TINY_UNTUNED)
    assert len(errs) == 5 and all(e < 1e-5 for e in errs)


def test_ops_run_and_agree_with_torch_when_installed():
    torch = pytest.importorskip("torch")
    errs = bench.check_ops(TINY_OPS, torch=torch)
    assert len(errs) == len(TINY_OPS) and all(e < 1e-5 for e in errs)
    errs = bench.check_conv(TINY_CONV + TINY_UNTUNED, torch=torch)
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


def test_same_padding_keeps_the_size():
    assert bench.numeric_padding("same", 7) == 3 and bench.numeric_padding(2, 5) == 2
    x, w, b, dy = bench.make_conv_data(*TINY_UNTUNED[0][1:])
    assert dy.shape == (1, 4, 7, 7)
    with pytest.raises(ValueError, match="odd kernel"):
        bench.numeric_padding("same", 4)


def test_untuned_shapes_cover_the_issue():
    wls = bench.UNTUNED_CONV_WORKLOADS
    assert any(w[3] % 2 for w in wls)  # odd sizes
    assert any(w[8] == 2 for w in wls) and any(w[9] == "same" for w in wls)
    assert {1, 7} <= {w[6] for w in wls}
    assert all(w[1] == 64 for w in wls) and set(bench.QUICK_UNTUNED) <= {w[0] for w in wls}


# ----------------------------------------------------------------------------
# Small calls
# ----------------------------------------------------------------------------


def test_small_calls_run_and_agree_with_torch_when_installed():
    torch = pytest.importorskip("torch")
    cont = bench.overhead_contenders(torch)
    assert {"relu", "conv2d 3x3 p1", "max_pool2d k2"} <= set(cont)
    assert all(set(fns) == {"catlab", "torch"} for fns in cont.values())
    assert bench.check_overhead(cont) < 1e-5
    cont["relu"]["torch"] = lambda: torch.relu(torch.ones(bench.TINY_SHAPE))
    with pytest.raises(AssertionError, match="relu"):
        bench.check_overhead(cont)


def test_small_calls_without_torch():
    cont = bench.overhead_contenders(None)
    assert all(set(fns) == {"catlab"} for fns in cont.values())
    assert bench.check_overhead(cont) == 0.0
    recs = bench.measure_overhead(None, repeats=1, only="relu")
    assert [r["name"] for r in recs] == ["relu", "relu_backward"]
    assert all(r["catlab_us"] > 0 and r["torch_us"] is None for r in recs)


# ----------------------------------------------------------------------------
# Tables: columns line up whatever the names, missing values are "-"
# ----------------------------------------------------------------------------


def _spans(line):
    """(start, end) of each cell: runs of text separated by two or more spaces."""
    return [m.span() for m in re.finditer(r"\S+(?: \S+)*", line)]


def _check_aligned(lines, columns):
    """Every line has one cell per column, text cells start and number cells end where the header's do."""
    head = _spans(lines[0])
    assert len(head) == len(columns)
    assert set(lines[1]) == {"-"} and len(lines[1]) == len(lines[0])
    for line in lines[2:]:
        cells = _spans(line)
        assert len(cells) == len(columns), line
        for (hs, he), (cs, ce), (_, align) in zip(head, cells, columns):
            assert (cs == hs) if align == "<" else (ce == he), (line, lines[0])


def _cells(line):
    return [line[s:e] for s, e in _spans(line)]


def _fake_conv(name, N, with_torch):
    rec = {
        "name": name,
        "N": N,
        "flops_forward": 2e9,
        "catlab": {
            "forward_s": 0.01,
            "backward_s": 0.02,
            "mem_forward": (2**20, None),
            "mem_backward": (3 * 2**20, 4 * 2**20),
            "mem_fwd+bwd": (5 * 2**20, 6 * 2**20),
        },
        "numpy": {"forward_s": 0.04, "backward_s": 0.08},
    }
    if with_torch:
        rec["torch"] = {"forward_s": 0.02, "backward_s": 0.01}
    return rec


@pytest.mark.parametrize("with_torch", [True, False])
def test_conv_table_lines_up(with_torch):
    recs = [_fake_conv("a", 64, with_torch), _fake_conv("a much longer workload name than the header", 1, with_torch)]
    lines = bench.render_table(bench.CONV_COLUMNS, bench.conv_rows(recs, peak=100.0))
    assert len(lines) == 2 + 6
    _check_aligned(lines, bench.CONV_COLUMNS)
    head = _cells(lines[0])
    t_ms, x_t, mem = head.index("torch ms"), head.index("x torch"), head.index("mem MiB")
    fwd, bwd, both = (_cells(line) for line in lines[2:5])
    assert [fwd[2], bwd[2], both[2]] == ["forward", "backward", "fwd+bwd"]
    # hand-computed: 2 GFLOP in 10 ms is 200 GFLOP/s, 200% of a 100 GFLOP/s peak; backward 4 GFLOP in 20 ms
    assert fwd[3:7] == ["10.000", "200.0", "200.0", "40.000"] and bwd[4] == "200.0" and both[3] == "30.000"
    assert [fwd[mem], bwd[mem], both[mem]] == ["1.0/-", "3.0/4.0", "5.0/6.0"]
    if with_torch:
        assert [fwd[t_ms], fwd[x_t], bwd[x_t], both[x_t]] == ["20.000", "0.50", "2.00", "1.00"]
    else:
        assert all(row[t_ms] == "-" and row[x_t] == "-" for row in (fwd, bwd, both))


@pytest.mark.parametrize("with_torch", [True, False])
def test_layer_small_call_and_memory_tables_line_up(with_torch):
    t = {"forward_s": 0.002, "backward_s": 0.002} if with_torch else None
    ops = [
        {
            "name": n,
            "shape": [64, 3, 4, 4],
            "catlab": {"forward_s": 0.001, "backward_s": 0.003},
            **({"torch": t} if t else {}),
        }
        for n in ("relu", "a much longer layer workload name here")
    ]
    lines = bench.render_table(bench.OPS_COLUMNS, bench.ops_rows(ops))
    _check_aligned(lines, bench.OPS_COLUMNS)
    row = _cells(lines[2])
    assert row[2:] == (
        ["1.000", "3.000", "2.000", "2.000", "1.00", "0.50", "1.50"]
        if with_torch
        else ["1.000", "3.000", "-", "-", "-", "-", "-"]
    )

    calls = [
        {"name": n, "catlab_us": 3.0, "torch_us": 2.0 if with_torch else None}
        for n in ("relu", "max_pool2d k2 return_indices")
    ]
    lines = bench.render_table(bench.OVERHEAD_COLUMNS, bench.overhead_rows(calls))
    _check_aligned(lines, bench.OVERHEAD_COLUMNS)
    assert _cells(lines[3])[1:] == (["3.0", "2.0", "1.50"] if with_torch else ["3.0", "-", "-"])

    mem = {
        "catlab_peak_bytes": 3 * 2**20,
        "torch_peak_bytes": 2 * 2**20 if with_torch else None,
        "catlab_tracemalloc_bytes": 2**20,
        "torch_tracemalloc_bytes": None,
        "output_bytes": 2**21,
    }
    lines = bench.render_table(bench.MEMORY_COLUMNS, bench.memory_rows(mem))
    _check_aligned(lines, bench.MEMORY_COLUMNS)
    assert _cells(lines[2]) == ["catlab", "3.0", "1.50" if with_torch else "-", "1.0", "2.0"]
    assert _cells(lines[3]) == ["torch", "2.0" if with_torch else "-", "1.00" if with_torch else "-", "-", "2.0"]


def test_conv_summary_counts_the_misses():
    recs = [
        {"name": "a", "N": 64, "forward_x_torch": 0.5, "fwd_bwd_x_torch": 1.0},
        {"name": "b", "N": 1, "forward_x_torch": 2.0, "fwd_bwd_x_torch": 1.25},
        {"name": "c", "N": 1, "forward_x_torch": 1.1, "fwd_bwd_x_torch": 0.75},
    ]
    assert bench.conv_summary(recs) == [
        "forward: x torch > 1 on 2 of 3 workloads; worst 2.00 (b, N=1)",
        "fwd+bwd: x torch > 1 on 1 of 3 workloads; worst 1.25 (b, N=1)",
    ]
    assert bench.conv_summary([dict(r, forward_x_torch=None, fwd_bwd_x_torch=None) for r in recs]) == []


def test_render_table_rejects_a_short_row():
    with pytest.raises(ValueError, match="rows must have 2 cells"):
        bench.render_table([("a", "<"), ("b", ">")], [["x"]])


# ----------------------------------------------------------------------------
# Selection, memory and the command line
# ----------------------------------------------------------------------------


def test_quick_only_and_batch_select():
    args = bench.argparse.Namespace(quick=True, only=None, batch=None)
    tuned, untuned, ops = bench.select(args)
    assert {c[1] for c in tuned} == {64} and all(c[0].startswith(("LeNet", "VGG")) for c in tuned)
    assert {c[0] for c in untuned} == set(bench.QUICK_UNTUNED) and {c[1] for c in untuned} == {1, 64}
    args = bench.argparse.Namespace(quick=False, only="@7x7", batch=1)
    tuned, untuned, ops = bench.select(args)
    assert tuned == [] and ops == [] and len(untuned) == 2 and all("@7x7" in c[0] and c[1] == 1 for c in untuned)


def test_peak_memory_counts_at_least_the_outputs():
    wl = ("small", 16, 32, 32, 32, 32, 3, 3, 1, 1)
    peak = bench.peak_memory(wl, threads=1, libs=("catlab",))["catlab"]
    outputs = 2 * 16 * 32 * 32 * 32 * 4  # y and dx, float32, 2 MiB each
    # the kernel updates its resident-set counters in batches: a few hundred KiB of slack
    assert peak is not None and 0.8 * outputs <= peak < 20 * outputs


def test_cli_quick_path_writes_json(tmp_path, monkeypatch, capsys):
    """The command line runs end to end on tiny workloads and writes valid JSON atomically."""
    monkeypatch.setattr(bench, "CONV_WORKLOADS", [("LeNet tiny", 64, 1, 6, 6, 2, 3, 3, 1, 1)])
    monkeypatch.setattr(bench, "UNTUNED_CONV_WORKLOADS", [("odd tiny same", 64, 2, 5, 5, 2, 3, 3, 1, "same")])
    monkeypatch.setattr(bench, "QUICK_UNTUNED", ("odd tiny same",))
    monkeypatch.setattr(bench, "OP_WORKLOADS", [("relu tiny", "relu", (64, 2, 3, 3), None)])
    out = tmp_path / "bench.json"
    bench.main(["--quick", "--no-torch", "--no-memory", "--repeats", "1", "--matmul-size", "64", "--json", str(out)])
    data = json.loads(out.read_text())
    assert [(c["name"], c["N"], c["tuned"]) for c in data["conv"]] == [
        ("LeNet tiny", 64, True),
        ("odd tiny same", 64, False),
        ("odd tiny same", 1, False),
    ]
    assert data["conv"][1]["padding"] == "same" and data["conv"][0]["catlab"]["forward_s"] > 0
    assert data["ops"][0]["kind"] == "relu"
    assert {"relu", "conv2d 3x3 p1"} <= {r["name"] for r in data["overhead"]} and data["memory"] is None
    text = capsys.readouterr().out
    assert "shapes not tuned for" in text and "fixed cost of one functional call" in text
    lines = text.splitlines()
    conv_head = next(i for i, line in enumerate(lines) if line.startswith("conv2d workload"))
    _check_aligned(lines[conv_head : conv_head + 5], bench.CONV_COLUMNS)
    assert _cells(lines[conv_head + 2])[7:9] == ["-", "-"]  # no torch


def test_interleaved_timing_settles_each_contender_before_its_sample(monkeypatch):
    """Every sample of a contender follows untimed calls of the same contender (the other library's
    spinning threads must go quiet first): the call order is A..A (settle) A..A (timed) B..B B..B."""
    ticks = iter(range(10**6))
    monkeypatch.setattr(bench.time, "perf_counter", lambda: next(ticks) * 1e-3)  # every call 1 ms apart
    calls = []
    out = bench.time_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 2, 4e-3)
    assert set(out) == {"a", "b"}
    warm = 4  # two warm-up calls per contender
    rounds = calls[warm:]
    runs = []
    for who in rounds:
        if runs and runs[-1][0] == who:
            runs[-1][1] += 1
        else:
            runs.append([who, 1])
    assert [who for who, _ in runs] == ["a", "b", "a", "b"]
    assert all(n >= 2 for _, n in runs)  # at least one settling call before the timed ones


def test_numpy_baseline_is_timed_apart_from_catlab_and_torch(monkeypatch):
    """catlab and torch are interleaved with each other; the NumPy baseline (whose BLAS threads spin
    after each product) runs in a separate pass."""
    groups = []
    monkeypatch.setattr(
        bench, "time_rounds", lambda fns, reps: groups.append(sorted(fns)) or {k: [1.0] * reps for k in fns}
    )
    cont = {who: (lambda: None, lambda: None) for who in ("catlab", "numpy", "torch")}
    tf, tb, rf, rb = bench._time_contenders(cont, 1, 3)
    assert groups == [["catlab", "torch"], ["catlab", "torch"], ["numpy"], ["numpy"]]
    assert set(tf) == set(tb) == set(rf) == set(rb) == set(cont)
    assert len(rf["catlab"]) == 3 and len(rf["numpy"]) == 3


def test_ratios_to_torch_are_paired_round_by_round(monkeypatch):
    """x torch is the median of each round's catlab / torch (both timed under that round's load), not the
    ratio of the medians: here torch's median comes from a quiet round and catlab's from a busy one."""
    assert bench.paired_ratio([1.0, 2.0, 4.0], [2.0, 4.0, 4.0]) == 0.5
    with pytest.raises(ValueError, match="equally long"):
        bench.paired_ratio([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="equally long"):
        bench.paired_ratio([], [])
    rounds = {  # three rounds: the load doubles, then doubles again; catlab takes 0.8 of torch's time in each
        "forward": {"catlab": [0.8, 1.6, 3.2], "torch": [1.0, 2.0, 4.0]},
        "backward": {"catlab": [1.8, 3.6, 7.2], "torch": [2.0, 4.0, 8.0]},
    }
    calls = iter(["forward", "backward"])
    monkeypatch.setattr(bench, "time_rounds", lambda fns, reps: rounds[next(calls)])
    x = np.zeros((2, 4), np.float32)
    cont = {"catlab": (lambda: x, lambda: x), "torch": (lambda: x, lambda: x)}
    monkeypatch.setattr(bench, "op_contenders", lambda *a, **k: cont)
    rec = bench.measure_op(("relu", "relu", (2, 4), None), None, 1, 3, 1e-4)
    assert rec["forward_x_torch"] == pytest.approx(0.8)
    assert rec["backward_x_torch"] == pytest.approx(0.9)
    assert rec["fwd_bwd_x_torch"] == pytest.approx(2.6 / 3.0)
    row = bench.ops_rows([rec])[0]
    assert row[-3:] == ["0.87", "0.80", "0.90"]
