"""Sphinx hooks for the catlab book (``sphinx.local_extensions`` in ``_config.yml``).

MathJax only where there is math. Sphinx counts a page as having equations when any page in its
toctree has some, so the root page (the preface, whose toctree lists every chapter) would load
MathJax (1.3 MB, ``book/_static/mathjax``) for the chapters' math. After Sphinx has added MathJax
to a page, drop it again unless that page itself holds math.
"""

from __future__ import annotations


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
    # after sphinx.ext.mathjax's install_mathjax (priority 500)
    app.connect("html-page-context", _drop_inherited_mathjax, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
