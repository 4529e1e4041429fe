"""Store notebooks without outputs: clear every code cell's outputs and execution count.

    python tools/strip_outputs.py [NOTEBOOK ...]      # default: every notebook under book/
    python tools/strip_outputs.py --check [NOTEBOOK ...]

Cells whose source holds ``NBVAL_CHECK_OUTPUT`` keep their outputs (nbval compares them). Exits 1
if a notebook had outputs (after stripping it, unless ``--check``), so it works as a pre-commit hook
and as a CI check. The file is rewritten atomically, in nbformat's layout (indent 1).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path


def strip(nb: dict) -> bool:
    """Clear outputs in place; return whether anything changed."""
    changed = False
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code" or "NBVAL_CHECK_OUTPUT" in "".join(cell.get("source", [])):
            continue
        if cell.get("outputs") or cell.get("execution_count") is not None:
            cell["outputs"], cell["execution_count"] = [], None
            changed = True
    return changed


def main(argv: list[str]) -> int:
    check = "--check" in argv
    paths = [Path(a) for a in argv if a != "--check"] or sorted(Path("book").rglob("*.ipynb"))
    dirty = []
    for path in paths:
        if ".ipynb_checkpoints" in path.parts:
            continue
        nb = json.loads(path.read_text(encoding="utf-8"))
        if not strip(nb):
            continue
        dirty.append(str(path))
        if not check:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
            os.replace(tmp, path)
    for p in dirty:
        print(f"{'has outputs' if check else 'stripped'}: {p}")
    return 1 if dirty else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
