"""Run the code the book shows from files (book/snippets/*.py), exactly as the chapters include it."""

import json
import os
import runpy

import numpy as np
import pytest

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
