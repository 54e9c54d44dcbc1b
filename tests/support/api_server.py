"""A real ``airflow api-server`` (a subprocess) with the provider's plugin, for the UI's tests.

Authentication is real: the simple auth manager with known users and passwords (``admin`` and
``viewer``), no all-admins mode; :meth:`ApiServer.token` logs in through ``POST /auth/token``.

The plugin is loaded the way an installed provider's is: through the ``airflow.plugins`` entry
point when this environment's install has it, else (an editable install older than the entry
point) from provider info, with ``[core] lazy_discover_providers = False``.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[2]
PASSWORDS = {"admin": "admin-password-0123", "viewer": "viewer-password-0123"}


def plugin_entry_point_installed() -> bool:
    return any(ep.name == "sms_campaigns" for ep in entry_points(group="airflow.plugins"))


@dataclass
class ApiServer:
    url: str
    process: subprocess.Popen
    log: Path

    def token(self, username: str = "admin") -> str:
        answer = requests.post(
            f"{self.url}/auth/token",
            json={"username": username, "password": PASSWORDS[username]},
            timeout=60,
        )
        answer.raise_for_status()
        return answer.json()["access_token"]

    def get(self, path: str, token: str | None = None, **params: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.get(f"{self.url}{path}", params=params, headers=headers, timeout=120)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def run_api_server(env: dict[str, str], airflow_home: Path, **settings: str) -> Iterator[ApiServer]:
    """``airflow api-server`` on a free port with ``env`` (an Airflow environment: home, metadata
    DB, connections) plus ``settings`` (e.g. ``AIRFLOW__SMS__LEDGER_CONN_ID``); stopped on exit."""
    passwords = airflow_home / "test_passwords.json"
    passwords.write_text(json.dumps(PASSWORDS))
    port = _free_port()
    env = {
        **env,
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        # This checkout first, whatever the environment's install points at.
        "PYTHONPATH": str(REPO) + (f":{env['PYTHONPATH']}" if env.get("PYTHONPATH") else ""),
        **settings,
    }
    if not plugin_entry_point_installed():
        env["AIRFLOW__CORE__LAZY_DISCOVER_PROVIDERS"] = "False"
    log = airflow_home / f"api-server-{port}.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "airflow", "api-server", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=airflow_home,
        )
    server = ApiServer(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + 300  # a loaded 2-core machine takes a minute to start it
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"airflow api-server exited ({process.returncode}):\n{log.read_text()[-3000:]}"
                )
            try:
                if requests.get(f"{server.url}/api/v2/monitor/health", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"airflow api-server not up after 300 s:\n{log.read_text()[-3000:]}")
            time.sleep(1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
