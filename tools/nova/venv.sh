#!/bin/bash
# Build (once) the Nova venv pyct's Nova adapter is tested in and print
# two lines: its path, then the directory to put on PYTHONPATH after the
# checkout (pyct's distribution metadata: its entry points).
#
# Nova's dependency set must not leak into pyct's own .venv, so it gets
# its own venv under /var/cache/pyct-test, keyed by the hash of the
# pinned requirements: the first run is slow (minutes), later runs reuse
# it. pyct's requirements Nova does not bring are added.
#
# Several checkouts (CI's clone, worktrees) build and use one venv at the
# same time, so (1) the build runs under an exclusive flock on
# nova-venv-KEY.lock and is marked done by .complete only when whole: a
# second builder waits for the first and reuses its venv; and (2) once
# built, the venv is never changed again: pyct's code comes from the
# checkout (PYTHONPATH), its metadata from a per-checkout directory made
# aside and renamed into place, and the shim that makes
# `compute_driver = pyct.PyctDriver` load (pyct's documented step,
# `pyct-nova-shim install`) is written atomically with identical content
# by every checkout.
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
# pyct's metadata for this checkout, keyed by its path and packaging
# files: entry points (oslo.config.opts pyct.nova, console scripts).
META_KEY=$( (echo "$REPO"; cat "$REPO/setup.cfg" "$REPO/pyproject.toml") \
           | sha256sum | cut -c1-12)
META=$CACHE/nova-venv-$KEY.pyct/$META_KEY
if [ ! -d "$META" ]; then
    mkdir -p "$(dirname "$META")"
    TMP=$(mktemp -d "$META.XXXXXX")
    trap 'rm -rf "$TMP"' EXIT
    "$VENV/bin/pip" install -q --no-deps \
        --target "$TMP" "$REPO" >&2
    # only the metadata: the code is the checkout's, never a copy
    rm -rf "$TMP/pyct_driver"
    mv -T "$TMP" "$META"
    trap - EXIT
fi
PYTHONPATH="$REPO:$META" "$VENV/bin/python" -m pyct_driver.nova.shim \
    install >&2
echo "$VENV"
echo "$META"
