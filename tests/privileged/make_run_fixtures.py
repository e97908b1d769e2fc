"""`make run` and `make stop` as a user runs them, on a test's own state dir.

The commands come from the Makefile itself (``make -n run STATE=<dir>``),
so the tests follow it when it changes: the config it writes, the
pyct-manage set-up commands and the all-in-one's command line.
``prepare`` writes that config into an ``E2E`` deployment's state dir
(plus what the shared test host forces: the deployment's own cgroup
parent, and whatever else a test adds) and runs the set-up; ``start``
runs the all-in-one exactly as the Makefile execs it, seen by the E2E
cleanup. ``make`` runs a target for real with ``STATE=<dir>``.
"""

from __future__ import annotations

import os
import shlex
import subprocess

from tests.privileged.e2e_fixtures import E2E
from tests.services import ServiceProcess, wait_http

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def make(target: str, state: str, *variables: str, check: bool = True,
         timeout: float = 300) -> subprocess.CompletedProcess:
    """``make -C REPO TARGET STATE=state VAR=...`` for real."""
    result = subprocess.run(
        ["make", "-s", "-C", REPO, target, f"STATE={state}", *variables],
        capture_output=True, text=True, timeout=timeout)
    if check:
        assert result.returncode == 0, (target, result.stdout, result.stderr)
    return result


def make_commands(target: str, state: str) -> list[str]:
    """The shell lines ``make -n TARGET`` would run, joined."""
    out = subprocess.run(["make", "-n", "-C", REPO, target, f"STATE={state}"],
                         check=True, capture_output=True, text=True).stdout
    return [line for line in out.replace("\\\n", " ").splitlines()
            if line.strip()]


def conf_text(sections: dict[str, dict[str, object]]) -> str:
    return "".join(f"\n[{name}]\n" + "".join(f"{k} = {v}\n"
                                             for k, v in values.items())
                   for name, values in sections.items())


class MakeRun:
    """The Makefile's `run` recipe, split into its steps."""

    def __init__(self, env: E2E) -> None:
        self.env = env
        self.state = env.state_path
        self.conf = os.path.join(self.state, "pyct.conf")
        lines = make_commands("run", self.state)
        self.setup = [ln for ln in lines if ln.startswith("mkdir -p")
                      or (ln.startswith("printf") and self.conf in ln)]
        self.manage = [shlex.split(ln) for ln in lines
                       if "/pyct-manage " in ln and "--config-file" in ln]
        serve = [ln for ln in lines if "pyct-all-in-one" in ln
                 and "--config-file" in ln]
        assert len(self.setup) == 2 and len(self.manage) >= 3 \
            and len(serve) == 1, lines
        self.argv = shlex.split(serve[0].split(" exec ", 1)[1])
        assert self.argv[0].endswith("/pyct-all-in-one"), self.argv

    def prepare(self, extra: dict[str, dict[str, object]],
                port: int, runs: int = 1) -> str:
        """Write the config (the Makefile's, then ``extra``'s sections: a
        later section's options win) and run the set-up ``runs`` times
        (each command quiet: nothing on stderr); return the config text
        the Makefile wrote."""
        subprocess.run(["bash", "-ec", "\n".join(self.setup)], check=True)
        with open(self.conf) as f:
            written = f.read()
        with open(self.conf, "a") as f:
            f.write(conf_text(extra))
        for _ in range(runs):
            for argv in self.manage:
                done = subprocess.run(argv, check=True, capture_output=True,
                                      text=True)
                # no third-party warning, no alembic chatter: nothing
                assert done.stderr == "", (argv, done.stderr)
        dep = self.env.dep
        dep.conf, dep.port = self.conf, port
        dep.endpoint = f"http://127.0.0.1:{port}"
        return written

    def start(self) -> ServiceProcess:
        """The all-in-one as the Makefile execs it; the E2E cleanup
        stops it (by pid)."""
        env = self.env
        proc = ServiceProcess("pyct-all-in-one", self.conf,
                              os.path.join(env.tmp, "all-in-one.log"),
                              extra=self.argv[3:] or None)
        env.dep.processes.append(proc)
        env.service = proc
        env._sdk = None
        try:
            wait_http(env.dep.endpoint + "/")
        except OSError:
            raise AssertionError("all-in-one did not start:\n"
                                 + proc.output()[-4000:]) from None
        return proc
