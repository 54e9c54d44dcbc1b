"""The sandbox's status page says its fault settings in words and what its counters count."""

from __future__ import annotations

import requests

from airflow_provider_sms.sandbox.admin import describe_faults
from airflow_provider_sms.sandbox.testing import run_sandbox


def test_fault_settings_read_as_words_not_as_a_python_dict() -> None:
    with run_sandbox() as sandbox:
        page = requests.get(f"{sandbox.url}/", timeout=30).text
        assert "settings: none (no fault injected)" in page
        assert "{&#x27;rate_429" not in page and "{'rate_429" not in page
        sandbox.set_faults(rate_429=0.1, retry_after=2, latency_ms=50, paths=["/v1/"])
        page = requests.get(f"{sandbox.url}/", timeout=30).text
    assert "429 on 10% of requests (Retry-After 2 s); 50 ms latency; only on paths containing /v1/" in page
    assert "requests since start" in page  # not kept in the state file: it starts at 0 after a restart


def test_describe_faults() -> None:
    assert describe_faults({"rate_500": 0.05, "commit_then_drop": 0.5, "seed": 3}) == (
        "500 on 5% of requests; commit then drop the answer on 50% of sends; on every path; seed 3"
    )
