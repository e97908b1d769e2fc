"""A real Keystone for the tests: installed from PyPI, cached, on loopback.

``keystone_venv()`` builds (once per machine and requirement set) a venv
with the real ``keystone`` from PyPI, apart from pyct's own venv, under
``/var/cache/pyct-test/keystone-venv-<key>`` (``PYCT_TEST_CACHE`` moves
it); the key hashes the requirements and the Python version, so a second
run reuses it and a changed pin builds a new one. A build that fails
raises: tests that need Keystone fail, they do not skip.

``KeystoneServer`` configures a Keystone in its own directory (SQLite,
Fernet and credential keys), runs ``keystone-manage db_sync``,
``fernet_setup``, ``credential_setup`` and ``bootstrap`` (user ``admin``),
serves it with ``tests/keystone_wsgi.py`` on a free loopback port, and
creates two projects (``project-a``, ``project-b``), each with a member
and a reader user, plus pyct's service user ``pyct`` (role ``service`` in
project ``service``). ``stop`` ends the server by its pid.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import openstack  # the real SDK: it creates the projects and users

from tests.services import free_port

KEYSTONE_REQUIREMENTS = ("keystone==30.0.0",)
BUILD_TIMEOUT = 600
HERE = os.path.dirname(os.path.abspath(__file__))
DOMAIN = "Default"
REGION = "RegionOne"


def cache_root() -> str:
    root = os.environ.get("PYCT_TEST_CACHE", "/var/cache/pyct-test")
    try:
        os.makedirs(root, exist_ok=True)
    except PermissionError:
        root = os.path.expanduser("~/.cache/pyct-test")
        os.makedirs(root, exist_ok=True)
    return root


def venv_key(requirements: tuple[str, ...] = KEYSTONE_REQUIREMENTS) -> str:
    text = "\n".join(sorted(requirements)) + f"\npy{sys.version_info[:2]}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def keystone_venv(requirements: tuple[str, ...] = KEYSTONE_REQUIREMENTS
                  ) -> str:
    """Path of a venv with ``requirements`` installed; built if missing."""
    root = cache_root()
    path = os.path.join(root, f"keystone-venv-{venv_key(requirements)}")
    done = os.path.join(path, ".pyct-complete")
    if os.path.exists(done):
        return path
    with open(os.path.join(root, ".keystone-venv.lock"), "w") as lock:
        # two test runs at once build it once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(done):
            return path
        shutil.rmtree(path, ignore_errors=True)  # a half-built one
        try:
            subprocess.run([sys.executable, "-m", "venv", path], check=True,
                           capture_output=True, text=True, timeout=120)
            subprocess.run([os.path.join(path, "bin", "python"), "-m", "pip",
                            "install", "-q", "--disable-pip-version-check",
                            *requirements], check=True, capture_output=True,
                           text=True, timeout=BUILD_TIMEOUT)
        except subprocess.CalledProcessError as err:
            shutil.rmtree(path, ignore_errors=True)
            raise RuntimeError(
                f"could not install {requirements} into {path}:\n"
                f"{err.stdout[-3000:]}\n{err.stderr[-3000:]}") from err
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        with open(done, "w") as f:
            f.write("\n".join(requirements) + "\n")
    return path


@dataclasses.dataclass(frozen=True)
class User:
    name: str
    password: str
    project: str
    id: str = ""
    project_id: str = ""


class KeystoneServer:
    """One Keystone on loopback with its users; ``start``/``stop``."""

    def __init__(self, workdir: str, venv: str) -> None:
        self.workdir = workdir
        self.venv = venv
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v3"
        self.admin = User("admin", secrets.token_hex(8), "admin")
        self.users: dict[str, User] = {}
        self.roles: dict[str, str] = {}   # name -> id
        self.proc: subprocess.Popen | None = None
        self.conf = self._write_conf("keystone.conf", {})

    def _write_conf(self, name: str, token: dict[str, object]) -> str:
        w = self.workdir
        sections = {
            "DEFAULT": {"log_file": f"{w}/keystone.log"},
            "database": {"connection": f"sqlite:///{w}/keystone.sqlite"},
            "fernet_tokens": {"key_repository": f"{w}/fernet-keys"},
            "credential": {"key_repository": f"{w}/credential-keys"},
            # bcrypt's least work factor: test passwords, fast logins
            "identity": {"password_hash_rounds": 4},
            "token": {"expiration": 3600, **token},
        }
        text = "".join(f"[{s}]\n" + "".join(f"{k} = {v}\n"
                                             for k, v in opts.items())
                       for s, opts in sections.items())
        path = os.path.join(w, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def _env(self, conf: str) -> dict[str, str]:
        return dict(os.environ, OS_KEYSTONE_CONFIG_FILES=conf)

    def manage(self, *args: str) -> None:
        run = subprocess.run(
            [os.path.join(self.venv, "bin", "keystone-manage"),
             "--config-file", self.conf, *args], capture_output=True,
            text=True, timeout=300)
        if run.returncode != 0:
            raise RuntimeError(f"keystone-manage {args[0]} failed:\n"
                               f"{run.stdout[-2000:]}{run.stderr[-3000:]}")

    def _serve(self, conf: str, port: int, log: str) -> subprocess.Popen:
        with open(os.path.join(self.workdir, log), "ab") as out:
            proc = subprocess.Popen(
                [os.path.join(self.venv, "bin", "python"),
                 os.path.join(HERE, "keystone_wsgi.py"), str(port)],
                env=self._env(conf), stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(
                        f"http://127.0.0.1:{port}/v3", timeout=2):
                    return proc
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    _stop(proc)
                    with open(os.path.join(self.workdir, log)) as f:
                        raise RuntimeError("keystone did not start:\n"
                                           + f.read()[-4000:])
                time.sleep(0.2)

    def start(self) -> "KeystoneServer":
        for keys in ("fernet-keys", "credential-keys"):
            os.makedirs(os.path.join(self.workdir, keys), mode=0o700,
                        exist_ok=True)
        owner = ["--keystone-user", str(os.getuid()),
                 "--keystone-group", str(os.getgid())]
        self.manage("db_sync")
        self.manage("fernet_setup", *owner)
        self.manage("credential_setup", *owner)
        self.manage("bootstrap", "--bootstrap-password", self.admin.password,
                    "--bootstrap-admin-url", self.url,
                    "--bootstrap-internal-url", self.url,
                    "--bootstrap-public-url", self.url,
                    "--bootstrap-region-id", REGION)
        self.proc = self._serve(self.conf, self.port, "keystone-server.log")
        try:
            self._populate()
        except BaseException:
            self.stop()
            raise
        return self

    def _populate(self) -> None:
        conn = self.connect(self.admin)
        ident = conn.identity
        self.roles = {r.name: r.id for r in ident.roles()}
        if "service" not in self.roles:
            self.roles["service"] = ident.create_role(name="service").id
        domain = ident.find_domain("default").id
        for project, members in (
                ("project-a", (("member-a", "member"),
                               ("reader-a", "reader"))),
                ("project-b", (("member-b", "member"),
                               ("reader-b", "reader"))),
                ("service", (("pyct", "service"),))):
            proj = ident.create_project(name=project, domain_id=domain)
            for name, role in members:
                password = secrets.token_hex(8)
                user = ident.create_user(name=name, password=password,
                                         domain_id=domain,
                                         default_project_id=proj.id)
                ident.assign_project_role_to_user(proj, user,
                                                  self.roles[role])
                self.users[name] = User(name, password, project, user.id,
                                        proj.id)
        admin_user = ident.find_user("admin")
        admin_project = ident.find_project("admin")
        self.admin = dataclasses.replace(self.admin, id=admin_user.id,
                                         project_id=admin_project.id)
        self.users["admin"] = self.admin

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
            self.proc = None

    # -- what tests use ----------------------------------------------------
    def auth(self, user: User) -> dict[str, str]:
        return {"auth_url": self.url, "username": user.name,
                "password": user.password, "project_name": user.project,
                "user_domain_name": DOMAIN, "project_domain_name": DOMAIN}

    def connect(self, user: User) -> openstack.connection.Connection:
        return openstack.connect(auth_type="password", region_name=REGION,
                                 identity_api_version="3",
                                 **self.auth(user))

    def clouds(self) -> dict[str, dict]:
        """A clouds.yaml ``clouds`` mapping: one cloud per user name,
        password auth, endpoints from the catalog."""
        return {name: {"auth_type": "password", "auth": self.auth(user),
                       "region_name": REGION, "identity_api_version": 3}
                for name, user in self.users.items()}

    def admin_env(self, user: User | None = None) -> dict[str, str]:
        """OS_* variables of the admin (or ``user``), as an openrc sets."""
        env = {f"OS_{k.upper()}": v for k, v in self.auth(
            user or self.admin).items()}
        env.update(OS_REGION_NAME=REGION, OS_IDENTITY_API_VERSION="3",
                   OS_AUTH_TYPE="password")
        return env

    def authtoken_section(self) -> dict[str, object]:
        """pyct.conf's ``[keystone_authtoken]`` for the service user."""
        svc = self.users["pyct"]
        return {"www_authenticate_uri": self.url, "auth_url": self.url,
                "auth_type": "password", "username": svc.name,
                "password": svc.password, "project_name": svc.project,
                "user_domain_name": DOMAIN, "project_domain_name": DOMAIN,
                "region_name": REGION}

    def token(self, user: User) -> str:
        return self.connect(user).session.get_token()

    def expired_token(self, user: User, lifetime: int = 1) -> str:
        """A real token of ``user`` that has expired: issued by a second
        Keystone process over the same database and keys whose tokens live
        ``lifetime`` seconds, which is stopped before the token is
        returned (after it expired)."""
        conf = self._write_conf("keystone-short.conf",
                                {"expiration": lifetime})
        port = free_port()
        proc = self._serve(conf, port, "keystone-short.log")
        try:
            auth = dict(self.auth(user),
                        auth_url=f"http://127.0.0.1:{port}/v3")
            token = openstack.connect(auth_type="password",
                                      region_name=REGION,
                                      **auth).session.get_token()
        finally:
            _stop(proc)
        time.sleep(lifetime + 1.5)
        return token


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
