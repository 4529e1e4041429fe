"""The book's house rules, checked on the notebooks themselves (no build needed).

- chapter numbers: the numbered parts of ``_toc.yml`` list ``book/01_*`` to ``book/NN_*`` in order,
  so "chapter 7" in the text and the file ``07_*`` are the same chapter, and every notebook in
  ``book/`` is in the table of contents;
- nothing is hidden for good: no cell is tagged ``remove-input`` or ``remove-cell`` except the
  Colab install cell (code may be collapsed with ``hide-input``/``hide-cell``);
- notebooks are stored without outputs;
- every chapter has exercises, each followed by a worked solution in a dropdown closed by default
  (sphinx-exercise's gated ``solution-start``/``solution-end``) that ends in a check (``assert``);
- every live ``interact`` sits in its own cell tagged ``skip-execution`` and ``remove-output``
  (see CONTRIBUTING.md), and never displays a stray return value;
- code lines fit the page (80 characters; the Colab install cell is not on the page).
"""

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"


def numbered_chapters() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    return [c["file"] for part in toc["parts"] if part.get("numbered") for c in part["chapters"]]


CHAPTERS = numbered_chapters()
NOTEBOOKS = sorted(p.relative_to(ROOT).with_suffix("").as_posix() for p in BOOK.glob("*.ipynb"))


def cells(name: str) -> list[dict]:
    return json.loads((ROOT / f"{name}.ipynb").read_text(encoding="utf-8"))["cells"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def test_chapters_are_numbered_in_reading_order():
    numbers = [int(re.match(r"book/(\d+)_", c).group(1)) for c in CHAPTERS]
    assert numbers == list(range(1, len(numbers) + 1)), numbers


def test_every_notebook_is_in_the_toc():
    toc = (ROOT / "_toc.yml").read_text(encoding="utf-8")
    missing = [n for n in NOTEBOOKS if f"file: {n}\n" not in toc and f"root: {n}\n" not in toc]
    assert not missing, f"notebooks missing from _toc.yml: {missing}"


def _is_colab_cell(cell: dict) -> bool:
    return "google.colab" in source(cell)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_no_code_removed_from_the_page(name):
    bad = [
        i
        for i, c in enumerate(cells(name))
        if {"remove-input", "remove-cell"} & set(c.get("metadata", {}).get("tags", [])) and not _is_colab_cell(c)
    ]
    assert not bad, f"{name}: cells {bad} are removed from the page; use hide-input / hide-cell"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_stored_without_outputs(name):
    bad = [
        i
        for i, c in enumerate(cells(name))
        if c["cell_type"] == "code"
        and (c.get("outputs") or c.get("execution_count") is not None)
        and "NBVAL_CHECK_OUTPUT" not in source(c)
    ]
    assert not bad, f"{name}: cells {bad} keep outputs (python tools/strip_outputs.py)"


@pytest.mark.parametrize("name", CHAPTERS)
def test_exercises_have_closed_solutions_ending_in_a_check(name):
    cs = cells(name)
    md = [source(c) for c in cs if c["cell_type"] == "markdown"]
    exercises = re.findall(r"^:{3,}\{exercise\}.*\n:label: (\S+)", "\n".join(md), re.M)
    assert len(exercises) >= 2, f"{name}: {len(exercises)} exercises (at least 2 wanted)"
    for label in exercises:
        start = [
            i
            for i, c in enumerate(cs)
            if c["cell_type"] == "markdown" and re.search(rf"\{{solution-start\}}\s+{re.escape(label)}\s*\n", source(c))
        ]
        assert len(start) == 1, f"{name}: exercise {label} has {len(start)} solutions"
        head = source(cs[start[0]])
        assert re.search(r"^:class: dropdown\s*$", head, re.M), f"{name}: solution {label} is not a dropdown"
        end = next((i for i in range(start[0] + 1, len(cs)) if "{solution-end}" in source(cs[i])), None)
        assert end is not None, f"{name}: solution {label} is never closed"
        code = [source(c) for c in cs[start[0] + 1 : end] if c["cell_type"] == "code"]
        assert code and re.search(r"\bassert\b|assert_allclose|assert_array", code[-1]), (
            f"{name}: solution {label} does not end in a check cell"
        )


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_interact_cells_are_tagged_and_return_nothing(name):
    for i, c in enumerate(cells(name)):
        if c["cell_type"] != "code" or not re.search(r"^\s*interact\(", source(c), re.M):
            continue
        tags = set(c.get("metadata", {}).get("tags", []))
        assert {"skip-execution", "remove-output"} <= tags, f"{name}: interact cell {i} tags {tags}"
        assert not re.search(r"lambda[^:]*:\s*\(", source(c)), (
            f"{name}: cell {i}: interact(lambda ...: (...)) displays a tuple under the figure"
        )


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_code_lines_fit_the_page(name):
    long = [
        (i, line)
        for i, c in enumerate(cells(name))
        if c["cell_type"] == "code" and not _is_colab_cell(c)
        for line in source(c).splitlines()
        if len(line) > 80
    ]
    assert not long, f"{name}: code lines over 80 characters: {long[:3]}"
