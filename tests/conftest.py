"""Shared fixtures: one sandbox gateway for the whole run, reset before each test that uses it."""

from __future__ import annotations

import json
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
