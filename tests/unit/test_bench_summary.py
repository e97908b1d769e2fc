"""tools/bench/summary.py's table, from canned documents, and its one list.

The table building (``summary_table``) is fed documents shaped as
``report.emit`` prints them; the catalog is checked against the programs
under tools/bench and against the Makefile's ``bench`` target, which must
run summary.py and list no program itself.
"""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
BENCH = REPO / "tools" / "bench"
sys.path.insert(0, str(BENCH))

import catalog  # noqa: E402
import summary  # noqa: E402
import summary_table as table  # noqa: E402
from summary_table import Metric, Program, Ref, Target, extra  # noqa: E402


def doc(results: dict, extra_: dict | None = None, unit: str = "ms",
        title: str = "t") -> dict:
    return {"benchmark": title, "host": {}, "unit": unit,
            "results": results, "extra": extra_ or {}}


def stats(median: float, p95: float | None = None) -> dict:
    return {"n": 5, "median": median, "p95": p95 or median, "min": median,
            "max": p95 or median, "mean": median}


SPAWN = Program("spawn", ("--runs", "50"), ("--runs", "5"), (
    Metric("spawn median", "ms", Ref("pyct spawn"), Ref("runc run -d"),
           "runc", Target("<=", 0.5, "#16", on="ratio")),
    Metric("spawn p95", "ms", Ref("pyct spawn", "p95")),))


def spawn_doc(pyct: float, runc: float) -> dict:
    return doc({"pyct spawn": stats(pyct, pyct * 2),
                "runc run -d": stats(runc)},
               {"spawn median ratio pyct/runc": pyct / runc})


def test_documents_skips_noise_and_other_json():
    first, second = doc({"a": stats(1.0)}, title="one"), doc({}, title="two")
    out = ("progress line {not json}\n"
           + json.dumps({"before destroy": {"x": 1}}) + "\n"
           + json.dumps(first, indent=2) + "\nFAILED?\n"
           + json.dumps(second) + "\n")
    assert table.documents(out) == [first, second]
    assert table.documents("") == []


def test_lookup_units_patterns_and_missing():
    docs = [doc({"sequential x20: POST -> ACTIVE": stats(0.041, 0.051)},
                {"host_side_memcg_per_guest_KiB": 701.3,
                 "target": "PASS (1 ms)",
                 "recovery_s": {"seconds": 1.96}}),
            doc({"no filtering": stats(29.4)}, unit="us"),
            doc({"all servers": stats(13.7)}, unit="s")]
    seq = Ref("sequential x*: POST -> ACTIVE")
    assert table.lookup(docs, seq, "ms") == pytest.approx(41.0)
    assert table.lookup(docs, Ref(seq.key, "p95"), "s") == \
        pytest.approx(0.051)
    assert table.lookup(docs, Ref("no filtering", doc=1), "us") == 29.4
    assert table.lookup(docs, Ref("no filtering", doc=1), "ms") == \
        pytest.approx(0.0294)
    assert table.lookup(docs, Ref("all servers", doc=2), "s") == 13.7
    assert table.lookup(docs, extra("host_side_memcg_per_guest_KiB"),
                        "KiB") == 701.3
    assert table.lookup(docs, extra("recovery_s", sub="seconds"), "s") == \
        1.96
    # a missing label, document or stat, and a verdict string: no number
    assert table.lookup(docs, Ref("concurrent x*: POST -> ACTIVE"),
                        "ms") is None
    assert table.lookup(docs, Ref("no filtering", doc=5), "us") is None
    assert table.lookup(docs, Ref(seq.key, "p99"), "ms") is None
    assert table.lookup(docs, extra("target"), "ms") is None


def test_ratio_and_verdict_against_the_peer():
    fast, slow = (table.Outcome(SPAWN, 0, 12.0, [spawn_doc(p, r)])
                  for p, r in ((0.010, 0.025), (0.0221, 0.0283)))
    rows = table.build_rows([fast, slow])
    assert [r.metric for r in rows] == ["spawn median", "spawn p95"] * 2
    med_fast, p95_fast, med_slow, _ = rows
    assert med_fast.pyct == pytest.approx(10.0)
    assert med_fast.peer == pytest.approx(25.0)
    assert med_fast.ratio == pytest.approx(0.4)
    assert med_fast.verdict == "PASS"
    assert med_slow.ratio == pytest.approx(22.1 / 28.3)
    assert med_slow.verdict == "FAIL"
    assert p95_fast.pyct == pytest.approx(20.0)
    assert p95_fast.ratio is None and p95_fast.verdict == "—"
    assert table.cells(med_slow) == [
        "spawn median (spawn)", "22.1 ms", "28.3 ms (runc)", "0.78",
        "ratio ≤ 0.5 (#16)", "FAIL"]


@pytest.mark.parametrize("op,limit,value,expected", [
    (">=", 40, 41.0, "PASS"), (">=", 40, 39.9, "FAIL"),
    ("<=", 0, 0.0, "PASS"), ("<=", 0, 1.0, "FAIL"),
    ("<=", 150, 150.0, "PASS"), ("<=", 150, 166.9, "FAIL")])
def test_verdict_on_pyct_value(op, limit, value, expected):
    assert table.verdict(Target(op, limit, "#16"), value, None) == expected


def test_failed_program_is_one_row_and_the_rest_continue():
    boots = Program("api_boot", (), (), (
        Metric("boots/s", "boots/s", extra("sustained boots/s (*"),
               target=Target(">=", 40, "#16")),))
    rows = table.build_rows([
        table.Outcome(SPAWN, 1, 3.0, [spawn_doc(0.01, 0.02)]),
        table.Outcome(boots, 0, 60.0, [doc({}, {
            "sustained boots/s (500 boots, 8 in flight)": 27.7})])])
    failed, boot = rows
    assert table.cells(failed) == [
        "all 2 metrics (spawn)", "FAILED (exit status 1)", "", "", "",
        "FAILED"]
    assert boot.pyct == 27.7 and boot.verdict == "FAIL"
    assert boot.target == "≥ 40 boots/s (#16)"


def test_missing_metric_is_shown_not_judged():
    rows = table.build_rows([table.Outcome(SPAWN, 0, 1.0, [doc({})])])
    assert [table.cells(r)[1] for r in rows] == ["missing", "missing"]
    assert [r.verdict for r in rows] == ["—", "—"]


def test_markdown_and_text_render_every_row():
    rows = table.build_rows([
        table.Outcome(SPAWN, 0, 1.0, [spawn_doc(0.0104, 0.0252)]),
        table.Outcome(SPAWN, -15, 600.0, [])])
    md = table.render_markdown(rows).splitlines()
    assert md[0] == ("| metric | pyct | peer (same run) | ratio | target | "
                     "result |")
    assert md[2] == ("| spawn median (spawn) | 10.4 ms | 25.2 ms (runc) | "
                     "0.41 | ratio ≤ 0.5 (#16) | PASS |")
    assert md[4].startswith("| all 2 metrics (spawn) | FAILED (exit "
                            "status -15) |")
    text = table.render_text(rows).splitlines()
    assert len(text) == 4 and "FAILED (exit status -15)" in text[3]


def test_json_dir_replays_to_the_same_table(tmp_path):
    prog = catalog.PROGRAMS[0]
    runs = [(table.Outcome(prog, 0, 12.5, [spawn_doc(0.02, 0.03)],
                           "8.51 14.74 11.84"),
             ["tools/bench/spawn.py", "--runs", "50", "--json"])]
    facts = {"started": "a", "ended": "b"}
    summary.write_json_dir(str(tmp_path), runs, facts)
    got_facts, got = summary.replay(str(tmp_path))
    assert got_facts == facts
    assert got == runs
    assert "| spawn | `spawn.py --runs 50 --json` | 12 s | 0 | " \
        "8.51 14.74 11.84 |" in summary.timings_markdown(got)
    assert table.build_rows([o for o, _ in got]) == \
        table.build_rows([o for o, _ in runs])


def _programs_on_disk() -> set[str]:
    return {p.stem for p in BENCH.glob("*.py")
            if "__main__" in p.read_text() and p.stem != "summary"}


def test_catalog_is_every_program_once_and_valid():
    idents = [p.ident for p in catalog.PROGRAMS]
    assert len(idents) == len(set(idents))
    assert {p.name for p in catalog.PROGRAMS} == _programs_on_disk()
    for prog in catalog.PROGRAMS:
        assert "--json" not in prog.args + prog.quick  # summary adds it
        for m in prog.metrics:
            if m.target is not None and m.target.on == "ratio":
                assert m.peer is not None, m.label
            if m.peer is not None:
                assert m.peer_name, m.label


def _bench_recipe() -> list[str]:
    lines = (REPO / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines)
                 if line.startswith("bench:"))
    recipe = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


def test_makefile_bench_runs_summary_and_lists_no_program():
    recipe = _bench_recipe()
    runs = [re.search(r"tools/bench/(\w+)\.py", line) for line in recipe]
    assert [m.group(1) for m in runs if m] == ["summary"], recipe


def test_summary_list_prints_the_catalog():
    out = subprocess.run([sys.executable, str(BENCH / "summary.py"),
                          "--list"], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out == [f"{p.ident}: tools/bench/{p.name}.py "
                   f"{' '.join(p.args)}".rstrip() for p in catalog.PROGRAMS]


@pytest.mark.parametrize("value,unit,text", [
    (99.96, "ms", "100 ms"), (59.94, "ms", "59.9 ms"), (9.996, "", "10.0"),
    (4.6, "ms", "4.60 ms"), (0.00333, "cores", "0.00333 cores"),
    (3.0, "", "3"), (1955.2, "ms", "1955 ms"), (None, "ms", "missing")])
def test_numbers_keep_three_digits(value, unit, text):
    assert table.fmt(value, unit) == text


OK_PROGRAM = """import json, sys
assert sys.argv[1:] == ["--runs", "2", "--json"], sys.argv
print("progress")
print(json.dumps({"benchmark": "ok", "host": {}, "unit": "ms",
                  "results": {"x": {"n": 2, "median": 0.020}},
                  "extra": {}}))
"""


def test_run_goes_on_past_a_failed_and_a_stopped_program(
        tmp_path, monkeypatch, capsys):
    (tmp_path / "fails.py").write_text("import sys; sys.exit(3)\n")
    (tmp_path / "hangs.py").write_text("import time; time.sleep(60)\n")
    (tmp_path / "ok.py").write_text(OK_PROGRAM)
    metric = (Metric("x", "ms", Ref("x"), target=Target("<=", 25, "#16")),)
    monkeypatch.setattr(summary, "HERE", tmp_path)
    monkeypatch.setattr(catalog, "PROGRAMS", (
        Program("fails", (), (), metric), Program("hangs", (), (), metric),
        Program("ok", ("--runs", "2"), (), metric)))
    md = tmp_path / "table.md"
    monkeypatch.setattr(sys, "argv", [
        "summary.py", "--timeout", "1", "--markdown", str(md),
        "--json-dir", str(tmp_path / "json")])
    assert summary.main() == 1
    text = md.read_text()
    assert "| all 1 metric (fails) | FAILED (exit status 3) |" in text
    assert "| all 1 metric (hangs) | FAILED (exit status -15) |" in text
    assert "| x (ok) | 20 ms |  |  | ≤ 25 ms (#16) | PASS |" in text
    assert "load average (1/5/15 min)" in text.splitlines()[0]
    saved = json.loads((tmp_path / "json" / "ok.json").read_text())
    assert saved["exit_status"] == 0 and saved["documents"][0]["benchmark"] \
        == "ok"
    assert "FAILED (exit status 3)" in capsys.readouterr().out
