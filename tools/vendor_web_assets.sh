#!/usr/bin/env bash
# Re-create the vendored browser files in book/_static (committed, so that building and reading
# the book never needs npm or the internet). Needs npm (only to run this script).
#   bash tools/vendor_web_assets.sh        # then rebuild the book and run the browser tests
set -euo pipefail
cd "$(dirname "$0")/.."
HTML_MANAGER=1.0.15   # @jupyter-widgets/html-manager, the embedder matching ipywidgets 8.1
REQUIREJS=2.3.8
MATHJAX=3.2.2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "@jupyter-widgets/html-manager@$HTML_MANAGER" "requirejs@$REQUIREJS" "mathjax@$MATHJAX" >/dev/null)
for t in "$tmp"/*.tgz; do mkdir -p "${t%.tgz}" && tar xzf "$t" -C "${t%.tgz}"; done
hm="$tmp/jupyter-widgets-html-manager-$HTML_MANAGER/package"
rq="$tmp/requirejs-$REQUIREJS/package"
mj="$tmp/mathjax-$MATHJAX/package"

w=book/_static/widgets
rm -rf "$w/fonts" "$w/embed-amd.js" "$w/embed-amd.js.LICENSE.txt" "$w/require.js"
mkdir -p "$w/fonts"
cp "$hm/dist/embed-amd.js" "$w/"
cp "$hm/dist/embed.js.LICENSE.txt" "$w/embed-amd.js.LICENSE.txt"
cp "$hm"/dist/*.woff2 "$w/fonts/"   # browsers take the woff2 of each @font-face; other formats are never fetched
cp "$rq/require.js" "$w/"

m=book/_static/mathjax
rm -rf "$m"
mkdir -p "$m/output/chtml/fonts"
cp "$mj/es5/tex-chtml-full.js" "$m/"        # every TeX extension built in: nothing autoloaded
cp -r "$mj/es5/output/chtml/fonts/woff-v2" "$m/output/chtml/fonts/"
cp "$mj/LICENSE" "$m/LICENSE"

(cd book/_static && find widgets mathjax -type f ! -name setup.js | LC_ALL=C sort | xargs sha256sum > VENDORED.sha256)
echo "vendored into book/_static; checksums in book/_static/VENDORED.sha256"
