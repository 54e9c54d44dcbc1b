"""Credentials, numbers and time helpers shared by the sandbox tests."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow_provider_sms.sandbox.testing import SandboxServer

SMSTOOLS_AUTH = {"X-Client-Id": "sandbox-client-id", "X-Client-Secret": "sandbox-client-secret-0123456789"}
SG24_LOGIN = {"email": "sandbox@example.com", "pass": "sandbox-password-0123"}
TEXTBOOST_TOKEN = "sandbox-textboost-token-0123456789"
TEXTBOOST_AUTH = {"Authorization": f"Bearer {TEXTBOOST_TOKEN}", "Accept": "application/json"}

# Valid numbers (phonenumbers agrees); the last two digits choose the simulated outcome.
NL = "31612345678"  # delivered
NL_UNDELIVERED = "31612345613"
NL_FAILED = "31612345666"
US = "12025550123"


def sandbox_now(sandbox: SandboxServer) -> datetime:
    """The sandbox clock (naive UTC)."""
    return datetime.strptime(sandbox.health()["now"], "%Y-%m-%dT%H:%M:%S.%fZ")


def later(sandbox: SandboxServer, fmt: str, **delta: float) -> str:
    """A sandbox time ``delta`` from now, formatted for a gateway's schedule field."""
    return (sandbox_now(sandbox) + timedelta(**delta)).strftime(fmt)
