"""tools/nova/venv.sh with several builders at once (CI and worktrees).

The script builds the shared Nova venv under a flock and never changes it
afterwards. Here the interpreter (``PY``) is a stub that makes a fake venv
whose ``pip`` logs each install with its start and end, so the test sees
the order of what concurrent runs did, in seconds, without PyPI.
"""

from __future__ import annotations

import pathlib
import subprocess

REPO = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "nova" / "venv.sh"

# One stub for the interpreter, the venv's pip and the venv's python.
STUB = r"""#!/bin/bash
name=$(basename "$0")
if [ "$name" = pip ]; then
    case "$1" in
        freeze) exit 0 ;;
        install)
            for ((i = 1; i <= $#; i++)); do
                if [ "${!i}" = --target ]; then
                    j=$((i + 1)); mkdir -p "${!j}/pyct-0.dist-info"
                    echo "meta $$" >> "$STUB_LOG"; exit 0
                fi
            done
            echo "start $$" >> "$STUB_LOG"; sleep 0.3
            echo "end $$" >> "$STUB_LOG" ;;
    esac
    exit 0
fi
if [ "$1 $2" = "-m venv" ]; then
    echo "venv $$" >> "$STUB_LOG"
    mkdir -p "$3/bin"; cp "$0" "$3/bin/pip"; cp "$0" "$3/bin/python"
    exit 0
fi
echo "python $*" >> "$STUB_LOG"
"""


def _run_builders(tmp_path: pathlib.Path, count: int
                  ) -> tuple[list[str], list[str]]:
    stub = tmp_path / "stubpy"
    stub.write_text(STUB)
    stub.chmod(0o755)
    log = tmp_path / "log"
    env = {"PATH": "/usr/bin:/bin", "PY": str(stub),
           "PYCT_TEST_CACHE": str(tmp_path / "cache"),
           "STUB_LOG": str(log)}
    procs = [subprocess.Popen(["bash", str(SCRIPT), str(REPO)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(count)]
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        outs.append(out)
    return outs, log.read_text().splitlines()


def test_concurrent_builders_build_once_and_agree(tmp_path):
    outs, log = _run_builders(tmp_path, 3)
    assert len(set(outs)) == 1
    venv, meta = outs[0].split()
    assert (pathlib.Path(venv) / ".complete").exists()
    assert list(pathlib.Path(meta).iterdir())[0].name == "pyct-0.dist-info"
    # one venv made, one metadata dir; installs never overlapped
    assert [line.split()[0] for line in log].count("venv") == 1
    assert [line.split()[0] for line in log].count("meta") == 1
    steps = [line.split() for line in log if line.split()[0] in
             ("start", "end")]
    assert len(steps) == 6  # pip upgrade + two requirement files
    for begin, finish in zip(steps[::2], steps[1::2]):
        assert (begin[0], finish[0], begin[1]) == ("start", "end",
                                                   finish[1])
    # each run wrote the shim, through the checkout's module
    shims = [line for line in log if line.startswith("python ")]
    assert shims == ["python -m pyct_driver.nova.shim install"] * 3


def test_a_half_built_venv_is_built_again(tmp_path):
    outs, _ = _run_builders(tmp_path, 1)
    venv = pathlib.Path(outs[0].split()[0])
    (venv / ".complete").unlink()  # as a build killed midway leaves it
    (venv / "junk").write_text("")
    outs, log = _run_builders(tmp_path, 1)
    assert not (venv / "junk").exists()
    assert (venv / ".complete").exists()
    assert [line.split()[0] for line in log].count("venv") == 2
