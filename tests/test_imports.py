"""Library users get a light import: catlab's core never pulls in plotting, widgets, data or torch."""

import subprocess
import sys

HEAVY = ["matplotlib", "ipywidgets", "IPython", "tqdm", "sklearn", "skimage", "mlxtend", "torch"]


def test_core_modules_import_without_heavy_dependencies():
    code = (
        "import sys, catlab, catlab.nn, catlab.functional, catlab.optim, catlab.train, "
        "catlab.checkpoint, catlab.gradcheck, catlab.receptive_field, catlab.datasets, catlab.interop; "
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_plotting_modules_import_matplotlib_only_when_used():
    code = "import sys, catlab.viz, catlab.widgets; print('matplotlib' in sys.modules, 'ipywidgets' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"], out.stdout + out.stderr
