"""The vendored browser files (book/_static) are intact and are what _config.yml points at.

The rendered book loads its widget JavaScript and MathJax from these files, never from a CDN; a
file lost or changed here would leave widgets blank or math raw on the offline site.
"""

import hashlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "book" / "_static"


def _manifest():
    rows = []
    for line in (STATIC / "VENDORED.sha256").read_text(encoding="utf-8").splitlines():
        digest, name = line.split(maxsplit=1)
        rows.append((digest, name.strip()))
    return rows


def test_manifest_lists_the_widget_and_mathjax_files():
    names = {name for _, name in _manifest()}
    assert {"widgets/embed-amd.js", "widgets/require.js", "mathjax/tex-chtml-full.js"} <= names
    assert any(n.startswith("widgets/fonts/") and n.endswith(".woff2") for n in names)
    assert any(n.startswith("mathjax/output/chtml/fonts/woff-v2/") for n in names)


@pytest.mark.parametrize("digest,name", _manifest(), ids=[n for _, n in _manifest()])
def test_vendored_file_matches_checksum(digest, name):
    path = STATIC / name
    assert path.is_file(), f"{name} is listed in VENDORED.sha256 but missing; run tools/vendor_web_assets.sh"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, (
        f"{name} differs from the vendored copy; run tools/vendor_web_assets.sh"
    )


def test_config_points_at_local_files():
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))["sphinx"]["config"]
    assert config["html_static_path"] == ["book/_static"]
    scripts = list(config["nb_ipywidgets_js"])
    assert scripts == ["widgets/require.js", "widgets/setup.js", "widgets/embed-amd.js"], scripts
    for rel in scripts + [config["mathjax_path"]] + config["html_css_files"]:
        assert "://" not in rel, f"{rel} would load from the internet"
        assert (STATIC / rel).is_file(), f"_config.yml points at {rel}, missing from book/_static"


def test_no_root_static_folder():
    # Jupyter Book injects every .js/.css found under html_static_path into EVERY page as soon as a
    # root _static/ exists, which would load the 3.6 MB widget bundle on pages without widgets.
    assert not (ROOT / "_static").exists(), "a root _static/ folder would inject the widget JavaScript into every page"
