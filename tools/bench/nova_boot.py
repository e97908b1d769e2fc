"""Boot to ACTIVE through real Nova with pyct's driver, beside pyct's API.

Usage (root): ``.venv/bin/python tools/bench/nova_boot.py [--runs 20]
[--json]``

Builds (or reuses) the cached Nova venv (``tools/nova/venv.sh``), runs
``tests/nova/inside/nova_bench.py`` there (Nova's in-process API,
conductor, scheduler and placement, ``compute_driver = pyct.PyctDriver``,
RPC casts as casts; POST /servers until a GET shows ACTIVE, m1.tiny,
busybox, no network), then ``tools/bench/api_boot.py`` for the same
boots through pyct's own API in the same run, and prints both.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools" / "bench"))

import report  # noqa: E402
from tests.nova import harness  # noqa: E402


def nova_samples(runs: int) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="pyct-bench-nova-") as tmp:
        out = os.path.join(tmp, "samples.json")
        python = harness.nova_venv() / "bin" / "python"
        proc = subprocess.run(
            [str(python), "-W", "ignore", str(harness.INSIDE / "run.py"),
             "nova_bench", os.path.join(tmp, "outcomes.json"),
             "NovaBootBench.test_boot_to_active"],
            env=harness.inside_env(PYCT_BENCH_RUNS=str(runs),
                                   PYCT_BENCH_OUT=out),
            capture_output=True, text=True, timeout=3600)
        if not os.path.exists(out):
            sys.exit(f"the Nova benchmark failed:\n{proc.stderr[-5000:]}")
        with open(out) as f:
            return json.load(f)


def main() -> None:
    p = report.parser(__doc__.splitlines()[0], 20)
    args = p.parse_args()
    rows = {"Nova API -> ACTIVE (pyct.PyctDriver, in-process Nova)":
            report.summarize(nova_samples(args.runs))}
    report.emit("Boot through Nova 34 with pyct's driver", rows, None,
                args.json)
    # pyct's own API in the same run, same flavor, image and no network
    subprocess.run([sys.executable, str(REPO / "tools/bench/api_boot.py"),
                    "--runs", str(args.runs), "--concurrent", "1",
                    "--sustained", "0"] + (["--json"] if args.json else []),
                   check=True)


if __name__ == "__main__":
    main()
