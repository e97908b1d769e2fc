"""Shared plumbing of the benchmark programs: options, statistics, output.

Every program under tools/bench takes ``--runs`` and ``--json``, turns its
samples (seconds) into median / p95 / min / max with ``summarize`` and
prints one aligned table (or one JSON document) with ``emit``. Percentiles
use the nearest-rank method, so a p95 is always a value that was measured.
The programs are run as scripts (``python tools/bench/spawn.py``), which
puts this directory on ``sys.path``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import signal
import statistics
import sys


def parser(description: str, default_runs: int) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--runs", type=int, default=default_runs,
                   help=f"measured runs (default {default_runs})")
    p.add_argument("--json", action="store_true",
                   help="print one JSON document instead of a table")
    return p


def percentile(samples: list[float], pct: float) -> float:
    """Nearest-rank percentile (pct in 0..100)."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[rank - 1]


def summarize(samples: list[float]) -> dict:
    if not samples:
        return {"n": 0}
    return {"n": len(samples), "median": statistics.median(samples),
            "p95": percentile(samples, 95), "min": min(samples),
            "max": max(samples), "mean": statistics.fmean(samples)}


def host_facts() -> dict:
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    return {"date": datetime.datetime.now().isoformat(timespec="seconds"),
            "kernel": platform.release(), "cpus": os.cpu_count(),
            "loadavg_at_end": " ".join(load)}


def emit(title: str, rows: dict[str, dict], extra: dict | None,
         as_json: bool, unit: str = "ms") -> None:
    """Print ``rows`` ({label: summarize(...)} in seconds) and ``extra``."""
    facts = host_facts()
    if as_json:
        # "unit" says how to read "results": "ms" and "s" rows are in
        # seconds (only the table scales them), others in that unit
        json.dump({"benchmark": title, "host": facts, "results": rows,
                   "extra": extra or {}, "unit": unit}, sys.stdout,
                  indent=2, sort_keys=True, default=str)
        print()
        return
    scale = 1000.0 if unit == "ms" else 1.0
    digits = 3 if unit == "cores" else 1
    print(f"\n== {title} ({facts['date']}, kernel {facts['kernel']}, "
          f"{facts['cpus']} cpus, load {facts['loadavg_at_end']})")
    width = max([len(k) for k in rows] + [10])
    print(f"{'':{width}}  {'n':>4}  {'median':>9}  {'p95':>9}  "
          f"{'min':>9}  {'max':>9}   ({unit})")
    for label, s in rows.items():
        if not s.get("n"):
            print(f"{label:{width}}  {0:>4}")
            continue
        print(f"{label:{width}}  {s['n']:>4}  "
              + "  ".join(f"{s[k] * scale:9.{digits}f}"
                          for k in ("median", "p95", "min", "max")))
    for key, value in (extra or {}).items():
        if isinstance(value, float):
            value = f"{value:.3f}"
        print(f"{key}: {value}")


def interrupt_on_term() -> None:
    """Make SIGTERM/SIGHUP unwind like Ctrl-C, so ``finally`` cleans up."""
    def _raise(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise)
