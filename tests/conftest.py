"""Shared fixtures: one sandbox gateway for the whole run, reset before each test that uses it; one
run of the example DAGs (the README's audience), shared by the tests that look at its results."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator

import pytest

from airflow_provider_sms.sandbox.testing import SandboxServer, run_sandbox


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxServer]:
    """The sandbox gateway (all three APIs on one port), started once per test session."""
    with run_sandbox(delivery_seconds=2) as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server: SandboxServer) -> SandboxServer:
    """The session's sandbox, emptied and fault-free."""
    sandbox_server.reset()
    sandbox_server.clear_faults()
    return sandbox_server


@pytest.fixture
def frozen_sandbox(sandbox: SandboxServer) -> SandboxServer:
    """The session's sandbox with its clock stopped: deliveries progress only through ``advance``,
    so a test never depends on how fast this machine gets from one request to the next."""
    sandbox.freeze_clock()
    return sandbox


@pytest.fixture
def sms_conn_env(sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Airflow connections to the sandbox (as environment variables); returns their conn ids."""
    monkeypatch.setenv("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
    connections = {
        "smstools": {
            "conn_type": "smstools",
            "host": sandbox.url,
            "login": "sandbox-client-id",
            "password": "sandbox-client-secret-0123456789",
            "extra": {"sender_id": "ACME"},
        },
        "smsgateway24": {
            "conn_type": "smsgateway24",
            "host": sandbox.url,
            "login": "sandbox@example.com",
            "password": "sandbox-password-0123",
            "extra": {"device_id": 1001, "sim": 0},
        },
        "textboost": {
            "conn_type": "textboost",
            "host": sandbox.url,
            "password": "sandbox-textboost-token-0123456789",
            "extra": {"sender_id": "ACME"},
        },
    }
    for gateway, connection in connections.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{gateway.upper()}_SANDBOX", json.dumps(connection))
    return {gateway: f"{gateway}_sandbox" for gateway in connections}


@pytest.fixture(scope="session")
def example_dags_run(tmp_path_factory: pytest.TempPathFactory):
    """Every example DAG run once with ``airflow dags test`` against the sandbox (300 customers, as
    the demo): the slowest fixture of the suite (a few minutes), so it runs once per session."""
    if os.environ.get("SMS_SKIP_EXAMPLE_DAG_RUNS") == "1":
        pytest.skip("SMS_SKIP_EXAMPLE_DAG_RUNS=1")
    from scripts.run_example_dags import run

    return run(tmp_path_factory.mktemp("example-dags-300"), customers=300)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Where the browser tests' screenshots (test artefacts) went, so a run's reader can open them."""
    browser = sys.modules.get("tests.support.browser")
    saved = getattr(browser, "SAVED", [])
    if saved:
        terminalreporter.write_sep("-", "browser screenshots (test artefacts)")
        for path in saved:
            terminalreporter.write_line(str(path))
