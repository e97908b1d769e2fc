"""Runs test code inside the Nova venv, from pyct's own test suite.

Nova's dependency set must not leak into pyct's ``.venv``, so the Nova
side (``tests/nova/inside``) runs in the venv ``tools/nova/venv.sh``
builds and caches under /var/cache/pyct-test (the first build takes
minutes; later runs reuse it). A venv that cannot be built (PyPI down or
slow past ``VENV_TIMEOUT``) fails the test that needs it, saying why;
nothing is skipped.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
INSIDE = REPO / "tests" / "nova" / "inside"
VENV_TIMEOUT = 2400
# Nova-side runs boot guests on fixed names (bridge pyctnv0, the taps of
# Nova's fixed VIF ids) and addresses: two checkouts' runs at once would
# tear down each other's links, so they take turns on this host
HOST_LOCK = "/run/lock/pyct-nova-guests.lock"
# (the venv, this checkout's pyct metadata directory): venv.sh's output
_VENV: list[pathlib.Path] = []


def nova_venv() -> pathlib.Path:
    """The cached Nova venv (built once; shared by every checkout)."""
    if _VENV:
        return _VENV[0]
    try:
        out = subprocess.run(
            ["bash", str(REPO / "tools" / "nova" / "venv.sh"), str(REPO)],
            capture_output=True, text=True, timeout=VENV_TIMEOUT)
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"building the Nova venv took over {VENV_TIMEOUT}s "
                    f"(is PyPI reachable?): {(err.stderr or '')[-2000:]}")
    if out.returncode != 0:
        errors = [line for line in out.stderr.splitlines()
                  if not line.startswith("WARNING: Location")]
        pytest.fail("building the Nova venv failed:\n"
                    + "\n".join(errors[-40:]))
    _VENV.extend(pathlib.Path(line)
                 for line in out.stdout.strip().splitlines()[-2:])
    return _VENV[0]


def inside_env(**extra: str) -> dict[str, str]:
    """The environment of a process in the Nova venv: Nova on native
    threads (as nova-compute 34 runs with it), this checkout's code and
    then its metadata (entry points) first: the shared venv holds no
    pyct of its own that another checkout could change under us."""
    nova_venv()
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(OS_NOVA_DISABLE_EVENTLET_PATCHING="true",
               PYTHONPATH=f"{REPO}:{_VENV[1]}", **extra)
    return env


def run_python(code: str, timeout: float = 300
               ) -> subprocess.CompletedProcess:
    """``python -c code`` in the Nova venv."""
    python = nova_venv() / "bin" / "python"
    return subprocess.run([str(python), "-W", "ignore", "-c", code],
                          capture_output=True, text=True, timeout=timeout,
                          env=inside_env(), cwd=tempfile.gettempdir())


def run_tests(module: str, *names: str, timeout: float = 1800
              ) -> tuple[dict, list[dict]]:
    """Run the unittest module ``tests/nova/inside/<module>.py`` (tests
    whose id contains one of ``names``) in the Nova venv; returns its
    outcomes by ``Class.test`` and the records the tests appended to
    ``PYCT_CONFORMANCE_RESULTS``."""
    python = nova_venv() / "bin" / "python"
    with host_turn(timeout), \
            tempfile.TemporaryDirectory(prefix="pyct-nova-run-") as tmp:
        out_json = os.path.join(tmp, "outcomes.json")
        records = os.path.join(tmp, "records.jsonl")
        proc = subprocess.run(
            [str(python), "-W", "ignore", str(INSIDE / "run.py"), module,
             out_json, *names],
            capture_output=True, text=True, timeout=timeout,
            env=inside_env(PYCT_CONFORMANCE_RESULTS=records),
            cwd=tempfile.gettempdir())
        sys.stderr.write(proc.stderr[-20000:])
        assert proc.returncode == 0, proc.stderr[-5000:]
        with open(out_json) as f:
            outcomes = json.load(f)
        try:
            with open(records) as f:
                extra = [json.loads(line) for line in f]
        except FileNotFoundError:
            extra = []
    return outcomes, extra


@contextlib.contextmanager
def host_turn(timeout: float):
    """Hold this host's Nova-guest lock (waiting up to ``timeout`` for
    another checkout's run to finish with it)."""
    os.makedirs(os.path.dirname(HOST_LOCK), exist_ok=True)
    with open(HOST_LOCK, "a") as lock:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"{HOST_LOCK} held by another run for "
                                f"over {timeout:.0f} s")
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
