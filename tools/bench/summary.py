"""Run the benchmark programs and print one summary table (``make bench``).

Usage (root, from the repository): ``.venv/bin/python tools/bench/summary.py
[--only spawn,list_scale] [--quick] [--markdown FILE] [--json-dir DIR]
[--timeout S] [--list] [--replay DIR]``

Runs each program of ``catalog.PROGRAMS`` (in order, one at a time, with
its arguments there, or its ``--quick`` ones) with ``--json``, keeps its
documents, and prints one table — metric, pyct, the peer measured in the
same run, ratio, the issue's target, PASS / FAIL / — — with the machine
(kernel, CPUs, memory, cgroup version) and its load average at the start
and the end. A program that exits non-zero, or is stopped by
``--timeout`` (SIGTERM: the programs clean up on it), becomes one FAILED
row with its exit status and the others still run; the exit status is 1
then. Each program's stderr passes through, as its progress. ``--markdown``
writes the same table as Markdown (what the README's Performance section
quotes), ``--json-dir`` every program's documents, exit status and time
(with the machine facts in ``summary.json``); ``--replay DIR`` prints the
table of such a directory again without running anything.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import signal
import subprocess
import sys
import time

import catalog
import summary_table as table

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
GRACE = 120  # seconds a program may take to clean up after SIGTERM


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def machine() -> dict:
    facts = {"kernel": platform.release(), "cpus": os.cpu_count()}
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                facts["cpu"] = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        kib = int(f.readline().split()[1])
    facts["memory"] = f"{kib / 1024 / 1024:.1f} GiB"
    unified = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    facts["cgroup"] = "v2" if unified else "v1"
    return facts


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%S UTC")


def run_one(prog: table.Program, quick: bool, timeout: float | None
            ) -> tuple[table.Outcome, list[str]]:
    argv = [sys.executable, str(HERE / f"{prog.name}.py"),
            *(prog.quick if quick else prog.args), "--json"]
    load = loadavg()
    print(f"== {prog.ident}: {' '.join(argv[1:])} (load {load})",
          file=sys.stderr, flush=True)
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True,
                            cwd=REPO)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # SIGTERM, not SIGKILL: the programs unwind and remove their
        # guests, cgroups and mounts on it (report.interrupt_on_term)
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=GRACE)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    took = time.monotonic() - start
    outcome = table.Outcome(prog, proc.returncode, took,
                            table.documents(out or ""), load)
    return outcome, argv[1:]


def header(facts: dict) -> str:
    return (f"{facts['started']} → {facts['ended']}; {facts['cpu']}, "
            f"{facts['cpus']} CPUs, {facts['memory']}, kernel "
            f"{facts['kernel']}, cgroup {facts['cgroup']}; load average "
            f"(1/5/15 min) {facts['load_start']} at the start, "
            f"{facts['load_end']} at the end; "
            f"{'quick' if facts['quick'] else 'full'} arguments")


def timings_markdown(runs: list[tuple[table.Outcome, list[str]]]) -> str:
    lines = ["| program | run | took | exit status | load at its start |",
             "|---|---|---|---|---|"]
    for out, argv in runs:
        lines.append(f"| {out.program.ident} | `{out.program.name}.py "
                     f"{' '.join(argv[1:])}` | {out.seconds:.0f} s | "
                     f"{out.status} | {out.load or '?'} |")
    return "\n".join(lines) + "\n"


def write_json_dir(path: str, runs: list[tuple[table.Outcome, list[str]]],
                   facts: dict) -> None:
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "summary.json"), "w") as f:
        json.dump({"facts": facts, "programs": [out.program.ident
                                                for out, _ in runs]}, f,
                  indent=2)
    for out, argv in runs:
        with open(os.path.join(path, f"{out.program.ident}.json"), "w") as f:
            json.dump({"program": out.program.name, "argv": argv,
                       "exit_status": out.status, "seconds": out.seconds,
                       "load_at_start": out.load,
                       "documents": out.documents}, f, indent=2)
            f.write("\n")


def replay(path: str) -> tuple[dict, list[tuple[table.Outcome, list[str]]]]:
    """The facts and outcomes that ``write_json_dir`` saved in ``path``."""
    with open(os.path.join(path, "summary.json")) as f:
        saved = json.load(f)
    known = {p.ident: p for p in catalog.PROGRAMS}
    runs = []
    for ident in saved["programs"]:
        with open(os.path.join(path, f"{ident}.json")) as f:
            doc = json.load(f)
        runs.append((table.Outcome(known[ident], doc["exit_status"],
                                   doc["seconds"], doc["documents"],
                                   doc.get("load_at_start", "")),
                     doc["argv"]))
    return saved["facts"], runs


def select(only: str | None) -> list[table.Program]:
    if not only:
        return list(catalog.PROGRAMS)
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    known = {p.ident: p for p in catalog.PROGRAMS}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise SystemExit(f"unknown program(s) {', '.join(unknown)}; "
                         f"known: {', '.join(known)}")
    return [p for p in catalog.PROGRAMS if p.ident in wanted]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", help="comma-separated programs (as --list "
                   "names them) instead of all")
    p.add_argument("--quick", action="store_true",
                   help="each program's quick arguments (CI smoke run)")
    p.add_argument("--markdown", metavar="FILE",
                   help="also write the table as Markdown")
    p.add_argument("--json-dir", metavar="DIR",
                   help="write each program's documents to DIR/NAME.json")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds per program before SIGTERM (default none)")
    p.add_argument("--list", action="store_true",
                   help="print the programs and their arguments, run none")
    p.add_argument("--replay", metavar="DIR",
                   help="the table of a --json-dir of an earlier run")
    args = p.parse_args()
    if args.replay:
        facts, runs = replay(args.replay)
        return print_summary(facts, runs, args)
    programs = select(args.only)
    if args.list:
        for prog in programs:
            used = prog.quick if args.quick else prog.args
            print(f"{prog.ident}: tools/bench/{prog.name}.py "
                  f"{' '.join(used)}".rstrip())
        return 0
    facts = dict(machine(), started=now(), load_start=loadavg(),
                 quick=args.quick)
    runs = [run_one(prog, args.quick, args.timeout) for prog in programs]
    facts.update(ended=now(), load_end=loadavg())
    if args.json_dir:
        write_json_dir(args.json_dir, runs, facts)
    return print_summary(facts, runs, args)


def print_summary(facts: dict, runs: list[tuple[table.Outcome, list[str]]],
           args: argparse.Namespace) -> int:
    """Print the table (and write ``--markdown``); 1 if a program failed."""
    rows = table.build_rows([out for out, _ in runs])
    print(f"\n== pyct benchmark summary: {header(facts)}")
    print(table.render_text(rows))
    for out, argv in runs:
        print(f"{out.program.ident}: {out.seconds:.0f} s, exit status "
              f"{out.status}, load {out.load or '?'} at its start "
              f"({' '.join(argv[1:])})")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(f"Machine and load: {header(facts)}.\n\n")
            f.write(table.render_markdown(rows))
            f.write("\n" + timings_markdown(runs))
    return 1 if any(out.status != 0 for out, _ in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
