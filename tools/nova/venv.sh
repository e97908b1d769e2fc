#!/bin/bash
# Build (once) and print the path of the Nova venv pyct's Nova adapter is
# tested in. Nova's dependency set must not leak into pyct's own .venv, so
# it gets its own venv under /var/cache/pyct-test, keyed by the hash of the
# pinned requirements: the first run is slow (minutes), later runs reuse it.
# pyct itself is installed editable from the repo given (default: this
# checkout), without deps; pyct's requirements Nova does not bring are
# added. The shim that makes `compute_driver = pyct.PyctDriver` load is
# written by pyct's own documented step, `pyct-nova-shim install`.
set -euo pipefail
REPO=$(cd "${1:-$(dirname "$0")/../..}" && pwd)
CACHE=${PYCT_TEST_CACHE:-/var/cache/pyct-test}
PY=${PY:-python3}
KEY=$(cat "$REPO/tools/nova/requirements.txt" "$REPO/requirements.txt" \
      | sha256sum | cut -c1-12)
VENV=$CACHE/nova-venv-$KEY
mkdir -p "$CACHE"
exec 9>"$CACHE/nova-venv-$KEY.lock"
flock 9
if [ ! -f "$VENV/.complete" ]; then
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip >&2
    "$VENV/bin/pip" install -q -r "$REPO/tools/nova/requirements.txt" >&2
    # pyct's requirements that Nova lacks (pyroute2, google-re2, ...);
    # ones Nova already pins stay as Nova has them.
    "$VENV/bin/pip" install -q -r "$REPO/requirements.txt" \
        -c <("$VENV/bin/pip" freeze --exclude-editable) >&2
    touch "$VENV/.complete"
fi
# The editable install points at one checkout; redo it when another
# checkout (a worktree, CI's clone) asks.
if [ "$(cat "$VENV/.repo" 2>/dev/null)" != "$REPO" ]; then
    "$VENV/bin/pip" install -q --no-deps -e "$REPO" >&2
    echo "$REPO" > "$VENV/.repo"
fi
"$VENV/bin/pyct-nova-shim" install >&2
echo "$VENV"
