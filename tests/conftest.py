# as in every pyct process: eventlet stays unimportable (pyct_driver.no_eventlet)
from pyct_driver import no_eventlet  # noqa: F401,I100

import collections
import os
import time
import warnings

import pytest

# oslo.utils warns about its eventlet helpers on import; pyct uses threads.
warnings.filterwarnings("ignore", category=DeprecationWarning,
                        module="oslo_utils.eventletutils")


def work_unit(nodeid: str) -> str:
    """The pytest-xdist work unit of a test: the tests of one unit run on
    one worker, one after the other, in collection order.

    The privileged tests run real guests on the host's bridges, metadata
    address and cgroup parents: they are one unit, as serial as without
    xdist. An integration module keeps its tests together: most share a
    module-scoped deployment (pyct processes, a database per backend, the
    Keystone), built once as in a serial run. Any other test is a unit of
    its own.
    """
    path = nodeid.split("::", 1)[0]
    if path.startswith("tests/privileged/"):
        return "tests/privileged"
    if path.startswith("tests/integration/"):
        return path
    if path.startswith("tests/nova/"):
        # one Nova venv build, one conformance run at a time
        return "tests/nova"
    return nodeid


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``work_unit`` as pytest-xdist's scheduling, whatever ``--dist``
    says (safe for the privileged tests under any ``-n``)."""
    from xdist.scheduler import LoadScopeScheduling

    class WorkUnits(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    # the order of the workers' collection (below) is the queue's
    config.option.loadscopereorder = False
    return WorkUnits(config, log)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """In a pytest-xdist worker, queue the privileged tests first (the
    longest serial run: it starts at once on its worker while the others
    take the rest), the other shared units next, most tests first (no long
    tail of a big unit at the end), the single tests last. Every worker
    sorts the same way (xdist checks they collected the same list); a
    serial run keeps pytest's order."""
    if not hasattr(config, "workerinput"):
        return
    units = [work_unit(item.nodeid) for item in items]
    size = collections.Counter(units)
    rank = {unit: (0 if unit == "tests/privileged" else
                   1 if unit.startswith("tests/integration/") else 2,
                   -size[unit]) for unit in size}
    order = sorted(range(len(items)), key=lambda i: rank[units[i]])
    items[:] = [items[i] for i in order]


def pytest_runtest_logreport(report):
    """With ``PYCT_TEST_TIMELINE=FILE``: one line per test phase (worker,
    phase, seconds, end time, test) appended to FILE, to see which
    worker's queue sets the suite's wall time."""
    path = os.environ.get("PYCT_TEST_TIMELINE")
    if not path or hasattr(report, "node"):  # xdist's controller: a copy
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with open(path, "a") as f:
        f.write(f"{worker}\t{report.when}\t{report.duration:.2f}\t"
                f"{time.time():.0f}\t{report.nodeid}\n")
