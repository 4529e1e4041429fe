"""Every index printed in the maths of chapters 06-07 is evaluated by a check cell.

Those chapters evaluate each printed formula literally, with loops, and compare it with catlab.
This test closes the remaining gap, an edit to the maths that is not carried into the check cell:
it collects every subscript ``name[...]`` inside ``$...$``/``$$...$$`` in the markdown, normalises
it (LaTeX spacing and ``\\text{}`` dropped, ``r'`` read as ``r_``, implicit products such as ``i s``
read as ``i * s``), and requires the same index tuple to be used as a subscript in a code cell.
"""

import json
import re
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parents[1] / "book"
CHAPTERS = ["06_conv_layer", "07_computing_conv"]

MATH = re.compile(r"\$\$(.+?)\$\$|\$(.+?)\$", re.DOTALL)
SUBSCRIPT = re.compile(r"\[([^\[\]]+)\]")


def _norm_latex(index: str) -> str:
    index = re.sub(r"\\[,;!: ]|\\quad|\\qquad", "", index)
    index = re.sub(r"\\text\{([^}]*)\}", r"\1", index)
    index = index.replace("'", "_")
    return re.sub(r"\s+", "", index)


def _norm_code(index: str) -> str:
    return re.sub(r"\s+", "", index).replace("*", "")


def _cells(name, kind):
    nb = json.loads((BOOK / f"{name}.ipynb").read_text(encoding="utf-8"))
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == kind]


def printed_indices(markdown_cells):
    """Normalised index tuples of every ``[...]`` inside maths (with at least one comma)."""
    found = set()
    for text in markdown_cells:
        for m in MATH.finditer(text):
            for index in SUBSCRIPT.findall(m.group(1) or m.group(2)):
                if "," in index:
                    found.add(_norm_latex(index))
    return found


def evaluated_indices(code_cells):
    return {_norm_code(i) for text in code_cells for i in SUBSCRIPT.findall(text) if "," in i}


def unchecked(name, markdown_cells=None):
    markdown_cells = _cells(name, "markdown") if markdown_cells is None else markdown_cells
    return sorted(printed_indices(markdown_cells) - evaluated_indices(_cells(name, "code")))


@pytest.mark.parametrize("name", CHAPTERS)
def test_every_printed_index_is_evaluated(name):
    printed = printed_indices(_cells(name, "markdown"))
    assert len(printed) >= 3, f"{name}: expected printed formulas, found {printed}"
    assert unchecked(name) == [], f"{name}: printed indices no code cell evaluates"


def test_known_indices_are_read_as_printed():
    md = [
        r"$$ y[n, k, i, j] = x_{\text{pad}}[n, c,\; i s + r d,\; j s + t d] $$",
        r"and $dy_{\text{pad}}[n,k,u+r',\,v+t']$",
    ]
    assert printed_indices(md) == {"n,k,i,j", "n,c,is+rd,js+td", "n,k,u+r_,v+t_"}
    assert evaluated_indices(["x_pad[n, c, i * s + r * d, j * s + t * d]"]) == {"n,c,is+rd,js+td"}


def test_a_wrong_printed_index_is_caught():
    """The index ch06 once printed for the input gradient is evaluated by no check cell."""
    md = _cells("07_computing_conv", "markdown")
    assert unchecked("07_computing_conv", md) == []
    wrong = [t.replace(r"dy_{\text{pad}}[n,k,u+r',\,v+t']", r"dy_{\text{pad}}[n,k,u-R+1+r',\,v-S+1+t']") for t in md]
    assert wrong != md, "the printed input-gradient index was not found in ch07"
    assert unchecked("07_computing_conv", wrong) == ["n,k,u-R+1+r_,v-S+1+t_"]
