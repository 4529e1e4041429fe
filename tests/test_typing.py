"""Type hints on catlab's public API (issue 13, "Types").

Every function and class named in a public module's ``__all__`` (and every public
method of the layer and optimizer classes) annotates all its parameters and its
return; the postponed annotations (``from __future__ import annotations``) must
resolve with :func:`typing.get_type_hints`, so a misspelt or missing name fails
here. ``catlab/py.typed`` ships with the package (PEP 561).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import sys
import tomllib
import typing
from pathlib import Path

import pytest

import catlab

ROOT = Path(__file__).resolve().parents[1]

#: Public modules whose ``__all__`` must be fully annotated.
MODULES = [
    "catlab",
    "catlab.functional",
    "catlab.nn",
    "catlab.optim",
    "catlab.train",
    "catlab.gradcheck",
    "catlab.interop",
    "catlab.receptive_field",
    "catlab.filters",
    "catlab.signals",
    "catlab.viz",
    "catlab.widgets",
    "catlab.pretrained",
    "catlab.distributed",
    "catlab.checkpoint",
    "catlab.datasets",
]

#: Modules whose classes' public methods are checked too.
CLASS_MODULES = ["catlab.nn", "catlab.optim"]

_DUNDERS = {"__init__", "__call__", "__getitem__", "__len__", "__iter__", "__repr__"}


def _public(modname):
    mod = importlib.import_module(modname)
    out = []
    for name in getattr(mod, "__all__", []):
        obj = getattr(mod, name)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            out.append((f"{modname}.{name}", obj))
    return out


def _methods(modname):
    """Public methods (inherited ones too, when defined in catlab) of the module's classes."""
    out, seen = [], set()
    for qual, cls in _public(modname):
        if not inspect.isclass(cls):
            continue
        for name in dir(cls):
            if name.startswith("_") and name not in _DUNDERS:
                continue
            member = inspect.getattr_static(cls, name)
            if isinstance(member, property):
                member = member.fget
            elif isinstance(member, (staticmethod, classmethod)):
                member = member.__func__
            if not inspect.isfunction(member) or not member.__module__.startswith("catlab"):
                continue
            if member in seen:
                continue
            seen.add(member)
            out.append((f"{qual}.{name}", member))
    return out


def _missing(func, *, is_method=False, is_init=False):
    """Names of the parameters (and 'return') of ``func`` that have no annotation."""
    sig = inspect.signature(func)
    params = list(sig.parameters.values())
    if is_method and params and params[0].name in ("self", "cls"):
        params = params[1:]
    missing = [p.name for p in params if p.annotation is inspect.Parameter.empty]
    if sig.return_annotation is inspect.Signature.empty:
        missing.append("return")
    return missing


def _resolve(func):
    """Resolve the postponed annotations; raises if a hint names something undefined."""
    mod = sys.modules[func.__module__]
    ns = dict(vars(mod))
    _run_type_checking_imports(mod, ns)
    return typing.get_type_hints(func, globalns=ns)


def _run_type_checking_imports(mod, ns):
    """Run the module's ``if TYPE_CHECKING:`` imports (matplotlib, torch, ipywidgets) into ``ns``.

    They are not imported at run time; where the optional package is missing, the
    names stand for a placeholder so that the rest of each hint is still checked.
    """
    tree = ast.parse(inspect.getsource(mod))
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for stmt in node.body:
                if not isinstance(stmt, (ast.Import, ast.ImportFrom)):
                    continue
                try:
                    exec(compile(ast.Module([stmt], []), mod.__file__, "exec"), ns)
                except ImportError:
                    for alias in stmt.names:
                        ns[(alias.asname or alias.name).split(".")[0]] = _Missing()


class _Missing:
    """Stands for a missing optional package in hints: ``torch.nn.Module`` resolves to this object."""

    def __getattr__(self, name):
        return self

    def __call__(self, *args, **kwargs):  # typing accepts callables as types
        return self


FUNCS = [item for m in MODULES for item in _public(m)]
METHODS = [item for m in CLASS_MODULES for item in _methods(m)]


def test_the_lists_are_not_empty():
    # guards against a refactoring that empties __all__ and makes every check vacuous
    assert len(FUNCS) > 60
    assert len(METHODS) > 60


@pytest.mark.parametrize("qual,obj", FUNCS, ids=[q for q, _ in FUNCS])
def test_public_names_are_annotated(qual, obj):
    if inspect.isclass(obj):
        init = obj.__init__
        if not inspect.isfunction(init) or not init.__module__.startswith("catlab"):
            return  # object.__init__: nothing to annotate
        missing = [m for m in _missing(init, is_method=True) if m != "return"]
        assert not missing, f"{qual}(): parameters without a type hint: {missing}"
        assert inspect.signature(init).return_annotation in (None, "None"), f"{qual}.__init__ must return None"
        _resolve(init)
        return
    missing = _missing(obj)
    assert not missing, f"{qual}: without a type hint: {missing}"
    hints = _resolve(obj)
    assert "return" in hints


@pytest.mark.parametrize("qual,meth", METHODS, ids=[q for q, _ in METHODS])
def test_public_methods_are_annotated(qual, meth):
    missing = _missing(meth, is_method=True)
    if meth.__name__ == "__init__":
        missing = [m for m in missing if m != "return"]
    assert not missing, f"{qual}: without a type hint: {missing}"
    _resolve(meth)


def test_the_check_fails_on_an_unannotated_function():
    def f(x, y: int):
        return x

    def g(x: int) -> int:
        return x

    assert _missing(f) == ["x", "return"]
    assert _missing(g) == []

    def h(x: NoSuchName) -> int:  # noqa: F821
        return 0

    with pytest.raises(NameError):
        typing.get_type_hints(h)


def test_py_typed_marker_ships():
    marker = Path(catlab.__file__).with_name("py.typed")
    assert marker.is_file()
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    data = config["tool"]["setuptools"]["package-data"]["catlab"]
    assert "py.typed" in data
