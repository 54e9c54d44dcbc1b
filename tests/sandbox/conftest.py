"""Fixtures for the sandbox's own tests: a frozen-clock sandbox and plain-HTTP clients."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from airflow_provider_sms.sandbox.testing import SandboxServer, run_sandbox

from .helpers import SG24_LOGIN


@pytest.fixture(scope="session")
def frozen_sandbox_server() -> Iterator[SandboxServer]:
    """A sandbox whose clock moves only through ``advance()``, so status checks never race real time."""
    with run_sandbox(delivery_seconds=2, frozen_clock=True) as server:
        yield server


@pytest.fixture
def sandbox(frozen_sandbox_server: SandboxServer) -> SandboxServer:
    """Overrides the shared fixture in this folder: the frozen sandbox, emptied and fault-free."""
    frozen_sandbox_server.reset()
    frozen_sandbox_server.clear_faults()
    return frozen_sandbox_server


@pytest.fixture
def http() -> Iterator[requests.Session]:
    session = requests.Session()
    session.trust_env = False
    yield session
    session.close()


@pytest.fixture
def sg24_token(sandbox: SandboxServer, http: requests.Session) -> str:
    return http.post(f"{sandbox.url}/getdata/gettoken", data=SG24_LOGIN).json()["token"]
