"""The training benchmark runs end to end (a smoke test on a few images; speed is never asserted)."""

import json
import os
import subprocess
import sys


def test_bench_train_smoke(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "catlab.bench_train",
            "--only",
            "digits",
            "--subset",
            "64",
            "--epochs",
            "2",
            "--no-torch",
            "--threads",
            "1",
            "--json",
            str(tmp_path / "r.json"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    for text in ("median epoch: catlab", "best epoch: catlab", "test accuracy after 2 epochs"):
        assert text in out.stdout
    res = json.loads((tmp_path / "r.json").read_text())["results"][0]
    assert res["name"] == "digits" and res["images"] == 64 and len(res["catlab_acc"]) == 2
    assert all(0.0 <= a <= 1.0 for a in res["catlab_acc"])


def test_bench_train_smoke_against_torch(tmp_path):
    """With torch installed, the same network trains in both libraries from the same weights and data order."""
    import pytest

    pytest.importorskip("torch")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [
        sys.executable,
        "-m",
        "catlab.bench_train",
        "--only",
        "digits",
        "--subset",
        "64",
        "--epochs",
        "2",
        "--threads",
        "1",
        "--json",
        str(tmp_path / "r.json"),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "catlab/torch time ratio" in out.stdout and "torch 2." in out.stdout
    res = json.loads((tmp_path / "r.json").read_text())["results"][0]
    assert len(res["torch_acc"]) == len(res["catlab_acc"]) == 2
    # identical start, data order and update rule: the two libraries agree on the accuracy
    assert abs(res["torch_acc"][-1] - res["catlab_acc"][-1]) <= 2 / 64
    assert res["median_ratio"] > 0 and res["torch_median_s"] > 0
