"""Progress of long operator steps: the first Debian build, image imports.

The debootstrap test replays the output of a real first build (bookworm,
``tests/fixtures/debootstrap_bookworm.log``: each line with the second it
came) on a simulated clock through the reporter ``pyct-manage image
create-debian`` uses, with the run loop's heartbeat every second; it
proves a line at least every four seconds, every stage named in order, and
few lines. The import tests push real files through the copy, the fake
driver's check and the image store's unpack and read the bytes reported.
"""

from __future__ import annotations

import io
import os
import pathlib
import re
import tarfile
import types

import pytest

from pyct_driver import exception, progress as progress_mod
from pyct_driver.cmd import manage
from pyct_driver.virt import fake
from pyct_driver.virt.rootfs import debootstrap, store

TRANSCRIPT = (pathlib.Path(__file__).resolve().parents[1] / "fixtures"
              / "debootstrap_bookworm.log")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def reporter(interval: float = 3.0) -> tuple[progress_mod.Progress,
                                             io.StringIO, Clock]:
    clock = Clock()
    out = io.StringIO()
    return progress_mod.Progress(out, interval=interval, clock=clock), out, \
        clock


def test_quick_steps_print_nothing_long_ones_show_bytes_and_the_end():
    prog, out, clock = reporter()
    for done in range(0, 101, 10):  # a 2-second copy
        clock.now = done / 50
        prog.transfer("copying", done << 20, 100 << 20)
    assert out.getvalue() == ""
    prog, out, clock = reporter()
    for done in range(0, 101, 10):  # a 10-second copy
        clock.now = done / 10
        prog.transfer("copying", done << 20, 100 << 20)
    assert out.getvalue().splitlines() == [
        "copying: 30.0 MiB of 100.0 MiB (30%)",
        "copying: 60.0 MiB of 100.0 MiB (60%)",
        "copying: 90.0 MiB of 100.0 MiB (90%)",
        "copying: 100.0 MiB of 100.0 MiB (100%)"]
    prog.transfer("copying", 100 << 20, 100 << 20)  # a reader's last call
    assert len(out.getvalue().splitlines()) == 4


def test_stages_print_at_once_updates_are_spaced():
    prog, out, clock = reporter()
    prog.stage("one")
    assert not prog.update("news")  # right after a line
    clock.now = 3.0
    assert prog.update("more news")
    prog.stage("two")
    assert out.getvalue().splitlines() == ["one", "more news", "two"]
    assert [progress_mod.size(n) for n in (5, 2048, 3 << 30)] == [
        "5 B", "2.0 KiB", "3.0 GiB"]


def test_debootstrap_first_build_reports_every_few_seconds():
    prog, out, clock = reporter()
    printed: list[tuple[float, str]] = []
    downloaded = {"bytes": 0}
    stages = debootstrap.Stages(prog, lambda: downloaded["bytes"])
    seen = 0

    def collect() -> None:
        nonlocal seen
        lines = out.getvalue().splitlines()
        printed.extend((clock.now, ln) for ln in lines[seen:])
        seen = len(lines)

    beat = 1.0  # debootstrap.run's wait: a heartbeat per silent second
    for raw in TRANSCRIPT.read_text().splitlines():
        when, _, line = raw.strip().partition(" ")
        while beat < float(when):
            clock.now = beat
            stages.heartbeat()
            collect()
            beat += 1.0
        clock.now = float(when)
        if line.startswith("I: Validating") and stages.stage.startswith(
                "downloading packages"):
            downloaded["bytes"] += 330_000
        stages.feed(line + "\n")
        collect()

    texts = [t for _, t in printed]
    assert [t for t in texts if re.match(r"debootstrap \d/9: ", t)] == [
        f"debootstrap {n}/9: {name}"
        for n, (_, name) in enumerate(debootstrap.STAGES, 1)]
    times = [0.0] + [t for t, _ in printed]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert max(gaps) <= 4.0, list(zip(gaps, texts))
    assert len(printed) <= 30, texts  # 50 s of debootstrap, ~650 lines
    assert any(re.search(r"downloading packages: \d+ packages \(\S+\), "
                         r"\d+\.\d MiB downloaded, \d+ s$", t) for t in texts)
    assert any(re.search(r"unpacking the required packages: \d+ packages "
                         r"\(\S+\), \d+ s$", t) for t in texts)


def test_run_beats_while_the_command_is_silent_and_keeps_the_tail():
    lines: list[str] = []
    beats: list[int] = []
    debootstrap.run(["sh", "-c", "echo 'I: one'; sleep 2.2; echo 'I: two'"],
                    "test", on_line=lines.append,
                    heartbeat=lambda: beats.append(1), interval=0.5)
    assert lines == ["I: one\n", "I: two\n"]
    assert len(beats) >= 3
    with pytest.raises(exception.RootfsError,
                       match=r"(?s)failing exited 3: .*boom"):
        debootstrap.run(["sh", "-c", "echo boom >&2; exit 3"], "failing")


def _big_tar(path: pathlib.Path, mib: int) -> None:
    data = os.urandom(1 << 20)
    with tarfile.open(path, "w") as tar:
        for i in range(mib):
            ti = tarfile.TarInfo(f"blob{i}")
            ti.size, ti.mode = len(data), 0o644
            tar.addfile(ti, io.BytesIO(data))


def test_imports_report_bytes_copied_checked_and_unpacked(tmp_path):
    src = tmp_path / "rootfs.tar"
    _big_tar(src, 24)
    total = progress_mod.size(src.stat().st_size)
    prog, out, _clock = reporter(interval=0.0)
    manage._copy(str(src), str(tmp_path / "copy"), prog)
    assert (tmp_path / "copy").read_bytes() == src.read_bytes()
    settings = types.SimpleNamespace(fake_driver=types.SimpleNamespace(
        vcpus=1, memory_mb=1, local_gb=1, spawn_delay=0))
    fake.FakeDriver(settings).import_image("f", str(src), prog)
    st = store.ImageStore(str(tmp_path / "store"), max_bytes=1 << 30,
                          max_files=1000)
    st.import_image("i", str(src), prog)
    st.import_image("j", str(src), prog)  # the same layer, now cached
    lines = out.getvalue().splitlines()
    for what in ("copying into the image store", "checking the image",
                 "unpacking the image", "checking the cached image"):
        mine = [ln for ln in lines if ln.startswith(what + ": ")]
        assert len(mine) >= 2, (what, lines)
        assert mine[-1] == f"{what}: {total} of {total} (100%)", mine
        assert re.match(rf"{what}: \d+\.\d [KM]iB of {total} \(\d+%\)$",
                        mine[0]), mine

