"""The API reference (book/api) covers every public module, function and class of catlab."""

import importlib
import inspect
import pkgutil
import re
import sys
from pathlib import Path

import pytest
import yaml

import catlab

ROOT = Path(__file__).resolve().parents[1]
API = ROOT / "book" / "api"
NOT_API = {"bench", "bench_train", "bench_winograd"}  # command-line programs (python -m), documented in the README


def public_modules() -> list[str]:
    return sorted(
        m.name for m in pkgutil.iter_modules(catlab.__path__) if not m.name.startswith("_") and m.name not in NOT_API
    )


def toc_files() -> set[str]:
    found = set()

    def walk(node):
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            for key in ("root", "file"):
                if key in node:
                    found.add(node[key])
            for key in ("parts", "chapters", "sections"):
                walk(node.get(key))

    walk(yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8")))
    return found


@pytest.mark.parametrize("name", public_modules())
def test_every_public_module_has_a_reference_page_in_the_toc(name):
    page = API / f"{name}.md"
    assert page.is_file(), f"no API page for catlab.{name}: add book/api/{name}.md"
    assert re.search(rf"^\.\. automodule:: catlab\.{name}$", page.read_text(encoding="utf-8"), re.M), page
    assert f"book/api/{name}" in toc_files(), f"book/api/{name} is not listed in _toc.yml"
    assert f"({name}.md)" in (API / "index.md").read_text(encoding="utf-8"), "not in book/api/index.md"


@pytest.mark.parametrize("name", public_modules())
def test_every_public_name_is_exported_and_documented(name):
    module = importlib.import_module(f"catlab.{name}")
    exported = getattr(module, "__all__", None)
    assert exported, f"catlab.{name} has no __all__ (autodoc documents exactly __all__)"
    defined_here = [
        n
        for n, obj in vars(module).items()
        if not n.startswith("_")
        and (inspect.isfunction(obj) or inspect.isclass(obj))
        and getattr(obj, "__module__", "") == module.__name__
    ]
    missing = sorted(set(defined_here) - set(exported))
    assert not missing, f"public functions/classes of catlab.{name} missing from __all__: {missing}"
    for n in exported:
        obj = getattr(module, n)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            assert inspect.getdoc(obj), f"catlab.{name}.{n} has no docstring"


def test_chapter_inline_code_links_to_the_reference():
    sys.path.insert(0, str(ROOT / "_ext"))
    try:
        from catlab_book import api_target
    finally:
        sys.path.pop(0)
    objects = {
        f"catlab.{m}.{n}": None for m in public_modules() for n in importlib.import_module(f"catlab.{m}").__all__
    }
    assert api_target("F.conv2d", objects) == "catlab.functional.conv2d"
    assert api_target("nn.Conv2d(3, 6, 5)", objects) == "catlab.nn.Conv2d"
    assert api_target("catlab.train.fit", objects) == "catlab.train.fit"
    assert api_target("conv2d_backward", objects) == "catlab.functional.conv2d_backward"
    assert api_target("fit(model, x, y)", objects) == "catlab.train.fit"
    for plain in ["fit", "np.dot", "x.shape", "F.nothing", "(N, C, H, W)", "28x28", ""]:
        assert api_target(plain, objects) is None, plain
