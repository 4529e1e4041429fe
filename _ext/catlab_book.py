"""Sphinx hooks for the catlab book (``sphinx.local_extensions`` in ``_config.yml``).

MathJax only where there is math. Sphinx counts a page as having equations when any page in its
toctree has some, so the root page (the preface, whose toctree lists every chapter) would load
MathJax (1.3 MB, ``book/_static/mathjax``) for the chapters' math. After Sphinx has added MathJax
to a page, drop it again unless that page itself holds math.

A quiet kernel. Each notebook's kernel logs "Kernel is running over TCP without encryption ..."
(ipykernel, at warning level) into the build's output, once per chapter: noise for a reader of the
build log (the kernel listens on 127.0.0.1 only). The build's kernels come from a ``python3``
kernel spec of our own, put first on ``JUPYTER_PATH`` for this process only, that starts the same
Python with the kernel application's log level at ERROR. Output of the cells is not affected.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import tempfile


def _quiet_kernel_spec() -> None:
    if os.environ.get("CATLAB_BUILD_KERNEL_LOGS"):  # set it to see the kernels' own log lines
        return
    root = tempfile.mkdtemp(prefix="catlab-kernels-")
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    spec_dir = os.path.join(root, "kernels", "python3")
    os.makedirs(spec_dir)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
                 "--IPKernelApp.log_level=ERROR"],
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
        "metadata": {"debugger": True},
    }
    with open(os.path.join(spec_dir, "kernel.json"), "w", encoding="utf-8") as f:
        json.dump(spec, f)
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [root, os.environ.get("JUPYTER_PATH")]))


def _drop_inherited_mathjax(app, pagename, templatename, context, doctree):
    if app.builder.format != "html" or "script_files" not in context:
        return
    if app.env.get_domain("math").data.get("has_equations", {}).get(pagename, False):
        return
    mathjax = str(app.config.mathjax_path)

    def is_mathjax(js) -> bool:
        body = getattr(js, "attributes", {}).get("body", "") or ""
        return (bool(mathjax) and str(getattr(js, "filename", js) or "").endswith(mathjax)) or body.startswith(
            ("window.MathJax", "MathJax.Hub.Config"))

    context["script_files"][:] = [js for js in context["script_files"] if not is_mathjax(js)]


def setup(app):
    _quiet_kernel_spec()
    # after sphinx.ext.mathjax's install_mathjax (priority 500)
    app.connect("html-page-context", _drop_inherited_mathjax, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
