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

Chapters link to the API reference. Inline code in a chapter's prose that names a documented catlab
object (`F.conv2d`, `nn.Conv2d`, `catlab.train.fit`, `conv2d_backward(...)`) becomes a link to its
entry in ``book/api`` (see :func:`api_target`), so a reader can go from where a function is used to
its full signature and docstring, without anyone writing the links by hand.
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
        "argv": [
            sys.executable,
            "-m",
            "ipykernel_launcher",
            "-f",
            "{connection_file}",
            "--IPKernelApp.log_level=ERROR",
        ],
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
            ("window.MathJax", "MathJax.Hub.Config")
        )

    context["script_files"][:] = [js for js in context["script_files"] if not is_mathjax(js)]


# How chapters abbreviate catlab's modules (``from catlab import functional as F, nn``).
_ALIASES = {"F": "functional", "catlab": ""}


def api_target(text: str, objects: dict) -> str | None:
    """The full name of the catlab object that inline code ``text`` names, or None.

    ``objects`` maps full names (``catlab.functional.conv2d``) to anything. Accepted forms: the
    full name; a module-qualified name (``functional.conv2d``, ``F.conv2d``, ``nn.Conv2d``,
    ``nn.Conv2d.backward``); a bare name that exactly one catlab object has, if it is written as a
    call (``fit(...)``), holds an underscore (``conv2d_backward``) or is capitalised (``Conv2d``),
    so that a variable such as ``cat`` stays plain. Each may end in a call's parentheses.

    >>> objs = {"catlab.functional.conv2d": 1, "catlab.nn.Conv2d": 1, "catlab.train.fit": 1}
    >>> [api_target(t, objs) for t in ["F.conv2d", "nn.Conv2d(3, 6, 5)", "fit()", "np.dot", "fit"]]
    ['catlab.functional.conv2d', 'catlab.nn.Conv2d', 'catlab.train.fit', None, None]
    """
    name = text.strip().split("(", 1)[0].strip()
    if not name or not all(part.isidentifier() for part in name.split(".")):
        return None
    if name in objects and name.startswith("catlab."):
        return name
    head, _, rest = name.partition(".")
    if rest:
        module = _ALIASES.get(head, head)
        full = ".".join(filter(None, ["catlab", module, rest]))
        return full if full in objects else None
    if not ("(" in text or "_" in name or name[0].isupper()):
        return None
    matches = [full for full in objects if full.startswith("catlab.") and full.rsplit(".", 1)[-1] == name]
    return matches[0] if len(matches) == 1 else None


def _link_api_names(app, doctree, docname):
    if app.builder.format != "html" or not docname.startswith("book/") or docname.startswith("book/api/"):
        return
    from docutils import nodes

    objects = app.env.get_domain("py").objects  # full name -> (docname, node_id, objtype, aliased)
    for literal in list(doctree.findall(nodes.literal)):
        if isinstance(literal.parent, nodes.reference):
            continue
        full = api_target(literal.astext(), objects)
        if full is None:
            continue
        entry = objects[full]
        uri = app.builder.get_relative_uri(docname, entry.docname) + "#" + entry.node_id
        ref = nodes.reference("", "", internal=True, refuri=uri, reftitle=full, classes=["catlab-api"])
        literal.replace_self(ref)
        ref.append(literal)


def setup(app):
    _quiet_kernel_spec()
    app.connect("doctree-resolved", _link_api_names)
    # after sphinx.ext.mathjax's install_mathjax (priority 500)
    app.connect("html-page-context", _drop_inherited_mathjax, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
