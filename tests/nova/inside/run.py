"""Run unittest-style test modules in the Nova venv; outcomes as JSON.

Nova's ``TestCase`` clears its own attributes after each test, which
pytest's unittest support trips over, so the Nova-side tests run under
the standard library's runner (as stestr would). Usage::

    python run.py MODULE OUTPUT.json [NAME_SUBSTRING ...]

writes ``{"Class.test": {"outcome": ..., "detail": ...}}`` and exits 0 when
the run itself completed (the outer pytest test judges the outcomes).
"""

import importlib
import json
import os
import sys
import unittest


class _Recorder(unittest.TextTestResult):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.outcomes = {}

    def _put(self, test, outcome, detail=""):
        name = f"{type(test).__name__}." + getattr(
            test, "_testMethodName", str(test))
        if self.outcomes.get(name, {}).get("outcome") in ("failed",):
            return  # a tearDown error after a failure keeps the failure
        self.outcomes[name] = {"outcome": outcome, "detail": detail[-4000:]}

    def addSuccess(self, test):
        super().addSuccess(test)
        self._put(test, "passed")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._put(test, "failed", self._exc_info_to_string(err, test))

    def addError(self, test, err):
        super().addError(test, err)
        self._put(test, "failed", self._exc_info_to_string(err, test))

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._put(test, "failed", f"{subtest}: "
                      + self._exc_info_to_string(err, test))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._put(test, "skipped", reason)


def main(argv):
    module_name, output = argv[1], argv[2]
    wanted = argv[3:]
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    module = importlib.import_module(module_name)
    suite = unittest.TestSuite()
    for test in unittest.defaultTestLoader.loadTestsFromModule(module):
        for case in test:
            if not wanted or any(w in case.id() for w in wanted):
                suite.addTest(case)
    runner = unittest.TextTestRunner(resultclass=_Recorder, verbosity=2,
                                     stream=sys.stderr)
    result = runner.run(suite)
    with open(output, "w") as f:
        json.dump(result.outcomes, f, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
