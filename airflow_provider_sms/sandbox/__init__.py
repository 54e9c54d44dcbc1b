"""Sandbox SMS gateway: the Smstools, SmsGateway24 and TextBoost APIs on one local port.

Start it with ``sms-sandbox --port 8025`` or ``python -m airflow_provider_sms.sandbox``; in tests use
``airflow_provider_sms.sandbox.testing.run_sandbox`` (a thread) or ``start_sandbox_process``.

It imports nothing else from ``airflow_provider_sms`` (it checks the provider's clients, so it
must not share their code) and no Airflow (it starts in well under a second).
"""

from __future__ import annotations

from typing import Any

__all__ = ["SandboxConfig", "create_app", "run_sandbox", "start_sandbox_process"]


def __getattr__(name: str) -> Any:
    # Lazy, so that ``python -m airflow_provider_sms.sandbox --help`` does not load FastAPI.
    if name == "create_app":
        from airflow_provider_sms.sandbox.app import create_app

        return create_app
    if name == "SandboxConfig":
        from airflow_provider_sms.sandbox.config import SandboxConfig

        return SandboxConfig
    if name in ("run_sandbox", "start_sandbox_process"):
        from airflow_provider_sms.sandbox import testing

        return getattr(testing, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
