"""Run the code the book shows from files (book/snippets/*.py), exactly as the chapters include it."""

import json
import os
import re
import runpy

import numpy as np
import pytest
import yaml

BOOK = os.path.join(os.path.dirname(__file__), os.pardir, "book")


def test_pytorch_chapter_includes_the_snippet():
    """The appendix shows the file this module runs (a literalinclude), not a copy of it."""
    with open(os.path.join(BOOK, "17_to_pytorch.ipynb"), encoding="utf-8") as f:
        nb = json.load(f)
    sources = ["".join(c["source"]) for c in nb["cells"]]
    assert any("```{literalinclude} snippets/to_pytorch.py" in s for s in sources)
    assert any('runpy.run_path("snippets/to_pytorch.py")' in s for s in sources)


def test_to_pytorch_snippet_gives_identical_outputs_and_gradients():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(2)
    ns = runpy.run_path(os.path.join(BOOK, "snippets", "to_pytorch.py"))  # asserts inside, too
    np.testing.assert_allclose(ns["y_catlab"], ns["y_torch"], rtol=1e-4, atol=1e-5)
    assert ns["y_catlab"].shape == (8, 10)
    # The reverse move (step 6) put torch's weights into catlab: same arrays, key by key.
    tstate = ns["tnet"].state_dict()
    for key, value in ns["net"].state_dict().items():
        np.testing.assert_array_equal(value, tstate[key].numpy())
    # A change of weights on one side only must be detected by the comparison the snippet makes.
    ns["net"][0].weight.data[0, 0, 2, 2] += 1.0
    y = ns["net"](ns["x"])
    assert not np.allclose(y, ns["tnet"](torch.from_numpy(ns["x"])).detach().numpy(), rtol=1e-4, atol=1e-5)


def _chapter_sources(name, cell_type=None):
    with open(os.path.join(BOOK, name), encoding="utf-8") as f:
        cells = json.load(f)["cells"]
    return ["".join(c["source"]) for c in cells if cell_type in (None, c["cell_type"])]


def test_distributed_chapter_shows_the_package_code_it_runs():
    """Chapter 18 includes catlab/distributed.py (one copy of the code) and its markers still exist."""
    text = "\n".join(_chapter_sources("18_distributed_training.ipynb"))
    assert "```{literalinclude} ../catlab/distributed.py\n:pyobject: _worker" in text
    assert re.search(r"train_data_parallel\(\s*lenet5\(seed=0\),\s*x_train,\s*y_train", text)
    with open(os.path.join(BOOK, os.pardir, "catlab", "distributed.py"), encoding="utf-8") as f:
        module = f.read()
    assert "def _worker(" in module
    for marker in re.findall(r":(?:start-at|end-before): (.+)", text):
        assert module.count(marker) == 1, marker  # an include boundary must be unique in the file
    # no library code defined in the chapter: the training loop lives in the package only
    code = "\n".join(_chapter_sources("18_distributed_training.ipynb", "code"))
    assert "DistributedDataParallel(" not in code and "init_process_group" not in code


def test_deploy_workflow_builds_the_book_with_cpu_torch():
    """The published appendix must show the comparison, so the workflow installs torch before building."""
    with open(os.path.join(BOOK, os.pardir, ".github", "workflows", "book.yml"), encoding="utf-8") as f:
        steps = yaml.safe_load(f)["jobs"]["build"]["steps"]
    runs = [s.get("run", "") for s in steps]
    torch_step = next(i for i, r in enumerate(runs) if "pip install torch" in r)
    build_step = next(i for i, r in enumerate(runs) if "jupyter-book build" in r)
    assert torch_step < build_step
    assert "--index-url https://download.pytorch.org/whl/cpu" in runs[torch_step]
