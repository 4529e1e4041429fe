#!/usr/bin/env bash
# Build catlab's sdist and wheel (`python -m build`: the wheel is built from the sdist), install the
# wheel NON-editable into a fresh virtual environment, make its site-packages read-only, and then, as
# a non-root user whose home directory cannot be written, import catlab and run conv2d forward and
# backward (issue 14, item 1: Numba's `cache=True` used to fail at import with "no locator
# available"). Also checks that the install is clean (`pip check`) and that the wheel and sdist hold
# what they should (py.typed, the kernels).
#
# Usage:  tools/check_readonly_install.sh [PYTHON]
#   PYTHON must have the `build` package (default: python3). Run as root, the probes run as
#   uid/gid 65534 through `setpriv`; run as another user, they run as that user (chmod a-w then
#   protects the files from their owner too). Needs the package registry for the dependencies.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${1:-python3}
work=$(mktemp -d "${TMPDIR:-/tmp}/catlab-readonly.XXXXXX")
chmod 755 "$work"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
t0=$(date +%s)
elapsed() { echo "($(( $(date +%s) - t0 )) s)"; }

echo "--- build sdist and wheel $(elapsed)"
"$python" -m build -q --outdir "$work/dist" "$repo" >"$work/build.log" 2>&1 || { cat "$work/build.log"; fail "python -m build"; }
sdist=$(ls "$work"/dist/catlab-*.tar.gz) wheel=$(ls "$work"/dist/catlab-*.whl)
echo "built $(basename "$sdist") and $(basename "$wheel")"
"$python" - "$sdist" "$wheel" <<'EOF'
import sys, tarfile, zipfile
sdist, wheel = sys.argv[1:]
with tarfile.open(sdist) as t:
    s = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
with zipfile.ZipFile(wheel) as z:
    w = set(z.namelist())
need_both = {"catlab/__init__.py", "catlab/py.typed", "catlab/_kernels/_jit.py", "catlab/_kernels/conv.py"}
missing = sorted((need_both - s) | {"pyproject.toml", "README.md"} - s) + sorted(need_both - w)
assert not missing, f"missing from sdist/wheel: {missing}"
assert not any(n.startswith(("tests/", "book/")) for n in w), "the wheel must hold the package only"
print(f"sdist {len(s)} files, wheel {len(w)} files: package, py.typed and kernels present")
EOF

if [ "$(id -u)" = 0 ]; then as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups); who="uid 65534"
else as_user=(); who="$(id -un)"; fi

# The probe user must be able to run the environment's base interpreter: a pyenv Python under /root
# is not readable by uid 65534, so take the first candidate that user can start.
base=""
for cand in ${VENV_PYTHON:-} "$(command -v python3.11 || true)" /usr/bin/python3.11 /usr/bin/python3 "$python"; do
    [ -n "$cand" ] && [ -x "$cand" ] || continue
    real=$("$cand" -c "import sys; print(sys.executable)")
    if (cd / && "${as_user[@]}" env -i PATH=/usr/bin:/bin "$real" -I -c "import encodings, venv" 2>/dev/null); then
        base=$real; break
    fi
done
[ -n "$base" ] || fail "no Python interpreter that $who can run (set VENV_PYTHON)"

echo "--- fresh virtual environment ($("$base" --version), $base), non-editable install of the wheel, pip check $(elapsed)"
"$base" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q "$wheel" || fail "pip install $wheel"
"$work/venv/bin/python" -m pip check || fail "pip check"
site=$("$work/venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
[ -f "$site/catlab/_kernels/conv.py" ] || fail "catlab not installed into $site"
find "$site/catlab" -name '*.nb[ic]' -delete  # no Numba cache shipped or left by the install
chmod -R a-w "$work/venv"  # site-packages (and the whole environment) read-only
mkdir -m 555 "$work/home"  # a home directory nobody can write
mkdir -m 1777 "$work/tmp"  # a fresh, shared temporary directory like /tmp

cat >"$work/probe.py" <<'EOF'
import numpy as np
import catlab
from catlab import functional as F

assert "/venv/" in catlab.__file__, catlab.__file__  # the installed copy, not the source tree
x = np.ones((1, 1, 4, 4))
w = np.ones((1, 1, 3, 3))
y = F.conv2d(x, w)
np.testing.assert_array_equal(y, np.full((1, 1, 2, 2), 9.0))  # each output sums nine ones
dx, dw, db = F.conv2d_backward(np.ones_like(y), x, w)
# dx[i, j] counts the 3x3 windows (at offsets 0..1 by 0..1) that cover pixel (i, j)
cover = np.array([1, 2, 2, 1])
np.testing.assert_array_equal(dx[0, 0], np.outer(cover, cover))
np.testing.assert_array_equal(dw, np.full((1, 1, 3, 3), 4.0))  # every weight sees four ones
np.testing.assert_array_equal(db, [4.0])
print("conv2d forward and backward OK from", catlab.__file__)
EOF

probe() {  # $1: TMPDIR for the probe; prints its stderr and keeps it in $work/stderr; fails if the probe fails
    (cd "$work" && "${as_user[@]}" env -i PATH=/usr/bin:/bin HOME="$work/home" TMPDIR="$1" \
        "$work/venv/bin/python" -I -W default "$work/probe.py") 2>"$work/stderr" || { cat "$work/stderr"; fail "probe as $who"; }
    cat "$work/stderr" >&2
}
count_warnings() { grep -c "Warning" "$work/stderr" || true; }
! (cd "$work" && "${as_user[@]}" touch "$site/catlab/x" "$work/home/x" 2>/dev/null) || fail "site-packages or home is writable as $who"

echo "--- as $who: read-only site-packages, unwritable home: import and run (cache in a private temp dir) $(elapsed)"
probe "$work/tmp"
[ "$(count_warnings)" = 0 ] || fail "expected no warning when the private temporary cache works"
cache=$(ls -d "$work"/tmp/catlab-numba-cache-* 2>/dev/null) || fail "no private cache directory was made"
[ "$(stat -c %a "$cache")" = 700 ] || fail "cache directory $cache is not private (mode $(stat -c %a "$cache"))"
n=$(find "$cache" -name '*.nbi' | wc -l); [ "$n" -gt 0 ] || fail "nothing cached in $cache"
echo "cached $n kernel index files in $cache (mode 700)"
s0=$(date +%s%N); probe "$work/tmp"; s1=$(date +%s%N)
echo "second run, from the cache: $(( (s1 - s0) / 1000000 )) ms"

echo "--- as $who: the private cache directory exists but another user owns it: no cache, exactly one warning $(elapsed)"
mkdir -m 777 "$work/tmp2" && chmod +t "$work/tmp2"
mkdir -m 777 "$work/tmp2/catlab-numba-cache-65534" "$work/tmp2/catlab-numba-cache-$(id -u)"  # squatted by root/us
[ "$(id -u)" = 0 ] || chmod 777 "$work/tmp2/catlab-numba-cache-$(id -u)"  # ours but world-writable: unsafe too
probe "$work/tmp2"
[ "$(count_warnings)" = 1 ] || fail "expected exactly one warning, got $(count_warnings)"
grep -q "NUMBA_CACHE_DIR" "$work/stderr" || fail "the warning must say how to fix it (NUMBA_CACHE_DIR)"
[ -z "$(find "$work/tmp2" -name '*.nbi')" ] || fail "Numba cached into a directory another user can write"
echo "read-only install: all checks passed $(elapsed)"
