"""The summary table of one benchmark run: documents in, rows out.

``summary.py`` runs each program of ``catalog.PROGRAMS`` with ``--json``
and hands its stdout here: ``documents`` picks out the JSON documents that
``report.emit`` printed, ``build_rows`` turns each program's ``Metric``
specs into rows (pyct's value, the peer's measured in the same run, their
ratio, the issue's target and PASS / FAIL / —, or one FAILED row for a
program that exited non-zero) and ``render_text`` / ``render_markdown``
print them. Nothing here runs a program, so the unit tests feed it canned
documents.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json

# seconds per unit, for converting between time units only
TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6}
OPS = {"<=": "≤", ">=": "≥"}


@dataclasses.dataclass(frozen=True)
class Ref:
    """Where one number is in a program's documents. ``key`` is a label of
    ``results`` (with ``stat``) or a key of ``extra`` (``stat=None``), an
    fnmatch pattern so labels that carry the run's arguments (``at 200``)
    still match; ``sub`` is a key inside a dict value; ``unit`` is the raw
    value's unit (default: results rows in the document's unit, extra
    values already in the metric's unit)."""
    key: str
    stat: str | None = "median"
    section: str = "results"
    doc: int = 0
    unit: str | None = None
    sub: str | None = None


def extra(key: str, unit: str | None = None, doc: int = 0,
          sub: str | None = None) -> Ref:
    return Ref(key, None, "extra", doc, unit, sub)


@dataclasses.dataclass(frozen=True)
class Target:
    """``op`` ("<=" or ">=") ``value`` in the metric's unit, or on the
    pyct/peer ratio when ``on == "ratio"``; ``source`` names the issue."""
    op: str
    value: float
    source: str
    on: str = "pyct"


@dataclasses.dataclass(frozen=True)
class Metric:
    label: str
    unit: str
    pyct: Ref
    peer: Ref | None = None
    peer_name: str = ""
    target: Target | None = None


@dataclasses.dataclass(frozen=True)
class Program:
    """``tools/bench/<name>.py`` run with ``args`` (``quick`` in quick
    mode) and the metrics its documents give the table; ``key`` names a
    second entry of one program (for ``--only`` and file names)."""
    name: str
    args: tuple[str, ...]
    quick: tuple[str, ...]
    metrics: tuple[Metric, ...]
    key: str = ""

    @property
    def ident(self) -> str:
        return self.key or self.name


@dataclasses.dataclass
class Outcome:
    """One program's run: exit status, wall time, its documents and the
    load average (1/5/15 min) when it started."""
    program: Program
    status: int
    seconds: float
    documents: list[dict]
    load: str = ""


@dataclasses.dataclass
class Row:
    program: str
    metric: str
    unit: str
    pyct: float | None = None
    peer: float | None = None
    peer_name: str = ""
    ratio: float | None = None
    target: str = ""
    verdict: str = "—"
    failed: str = ""


def documents(stdout: str) -> list[dict]:
    """The JSON documents of ``report.emit`` in a program's stdout, in
    order; other output (progress lines, a nested program's partial
    document) is skipped, so a program may print around its documents."""
    decoder, out, pos = json.JSONDecoder(), [], 0
    while True:
        pos = stdout.find("{", pos)
        if pos < 0:
            return out
        try:
            doc, end = decoder.raw_decode(stdout, pos)
        except json.JSONDecodeError:
            pos += 1
            continue
        if isinstance(doc, dict) and "benchmark" in doc:
            out.append(doc)
        pos = end


def _find(mapping: dict, pattern: str):
    if pattern in mapping:
        return mapping[pattern]
    for key in mapping:
        if fnmatch.fnmatchcase(key, pattern):
            return mapping[key]
    return None


def convert(value: float, unit: str | None, to: str) -> float:
    if unit in TIME_UNITS and to in TIME_UNITS:
        return value * TIME_UNITS[unit] / TIME_UNITS[to]
    return value


def lookup(docs: list[dict], ref: Ref, unit: str) -> float | None:
    """The number ``ref`` points at, in ``unit``; None where the document,
    the key or a number is missing."""
    if ref.doc >= len(docs):
        return None
    doc = docs[ref.doc]
    value = _find(doc.get(ref.section) or {}, ref.key)
    raw = ref.unit
    if ref.section == "results":
        value = value.get(ref.stat) if isinstance(value, dict) else None
        if raw is None:
            doc_unit = doc.get("unit", "ms")
            raw = "s" if doc_unit in ("ms", "s") else doc_unit
    if ref.sub is not None:
        value = value.get(ref.sub) if isinstance(value, dict) else None
    if isinstance(value, str):  # e.g. "PASS (12.3 ms)" is not a number
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    return convert(float(value), raw, unit)


def verdict(target: Target | None, pyct: float | None,
            ratio: float | None) -> str:
    if target is None:
        return "—"
    value = ratio if target.on == "ratio" else pyct
    if value is None:
        return "—"
    ok = value <= target.value if target.op == "<=" else \
        value >= target.value
    return "PASS" if ok else "FAIL"


def target_text(target: Target | None, unit: str) -> str:
    if target is None:
        return ""
    what = "ratio " if target.on == "ratio" else ""
    shown = fmt(target.value, "" if target.on == "ratio" else unit)
    return f"{what}{OPS[target.op]} {shown} ({target.source})"


def build_rows(outcomes: list[Outcome]) -> list[Row]:
    rows = []
    for out in outcomes:
        prog = out.program
        if out.status != 0:
            many = len(prog.metrics)
            rows.append(Row(prog.ident, f"all {many} metric"
                            f"{'s' if many != 1 else ''}", "",
                            verdict="FAILED",
                            failed=f"FAILED (exit status {out.status})"))
            continue
        for m in prog.metrics:
            pyct = lookup(out.documents, m.pyct, m.unit)
            peer = lookup(out.documents, m.peer, m.unit) if m.peer else None
            ratio = pyct / peer if pyct is not None and peer else None
            rows.append(Row(prog.ident, m.label, m.unit, pyct, peer,
                            m.peer_name, ratio, target_text(m.target, m.unit),
                            verdict(m.target, pyct, ratio)))
    return rows


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "missing"
    # three significant digits at most (99.96 is "100", not "100.0");
    # whole numbers (counts) as they are
    size = abs(value)
    if value == int(value) or size >= 99.95:
        text = f"{value:.0f}"
    elif size >= 9.995:
        text = f"{value:.1f}"
    elif size >= 0.9995:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".rstrip() if unit else text


def cells(row: Row) -> list[str]:
    """metric, pyct, peer, ratio, target, result as printed."""
    metric = f"{row.metric} ({row.program})"
    if row.failed:
        return [metric, row.failed, "", "", "", row.verdict]
    peer = ""
    if row.peer_name:
        peer = f"{fmt(row.peer, row.unit)} ({row.peer_name})"
    ratio = f"{row.ratio:.2f}" if row.ratio is not None else ""
    return [metric, fmt(row.pyct, row.unit), peer, ratio, row.target,
            row.verdict]


HEADER = ["metric", "pyct", "peer (same run)", "ratio", "target", "result"]


def render_markdown(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |",
             "|" + "---|" * len(HEADER)]
    for row in rows:
        lines.append("| " + " | ".join(c.replace("|", "\\|")
                                       for c in cells(row)) + " |")
    return "\n".join(lines) + "\n"


def render_text(rows: list[Row]) -> str:
    table = [HEADER] + [cells(r) for r in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(HEADER))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths))
                     .rstrip() for r in table) + "\n"
