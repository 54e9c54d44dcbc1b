"""Fault injection: seeded rates, Retry-After, latency, path filters and "commit then drop"."""

from __future__ import annotations

import random
import subprocess
import sys
import time

import pytest
import requests

from airflow_provider_sms.sandbox.testing import run_sandbox

from .helpers import NL, SMSTOOLS_AUTH, TEXTBOOST_AUTH

SEND = {"message": "Hi", "sender": "Shop", "to": NL}


@pytest.fixture
def balance(sandbox, http):
    def get() -> requests.Response:
        return http.get(f"{sandbox.url}/v1/balance", headers=SMSTOOLS_AUTH)

    return get


def test_status_faults_happen_at_the_configured_rates(sandbox, balance):
    sandbox.set_faults(rate_429=0.2, rate_500=0.1, rate_503=0.1, retry_after=7, seed=3)
    responses = [balance() for _ in range(1000)]
    codes = [r.status_code for r in responses]
    assert 150 <= codes.count(429) <= 250
    assert 60 <= codes.count(500) <= 140 and 60 <= codes.count(503) <= 140
    assert codes.count(200) == 1000 - codes.count(429) - codes.count(500) - codes.count(503)
    assert {r.headers.get("Retry-After") for r in responses if r.status_code == 429} == {"7"}
    assert {r.headers.get("Retry-After") for r in responses if r.status_code != 429} == {None}
    assert {r.json()["error"] for r in responses if r.status_code == 429} == {429}
    injected = sandbox.stats()["faults"]["injected"]
    assert (injected["429"], injected["500"], injected["503"]) == (
        codes.count(429),
        codes.count(500),
        codes.count(503),
    )


def _codes(sandbox, balance, seed: int, count: int = 60) -> list[int]:
    sandbox.set_faults(rate_429=0.3, rate_503=0.2, seed=seed)
    return [balance().status_code for _ in range(count)]


def test_the_same_seed_gives_the_same_fault_sequence(sandbox, balance):
    first = _codes(sandbox, balance, seed=5)
    assert _codes(sandbox, balance, seed=5) == first
    assert _codes(sandbox, balance, seed=6) != first
    # The sequence is documented: two draws of random.Random(seed) per request.
    rng = random.Random(5)
    expected = []
    for _ in range(60):
        status_draw, _drop_draw = rng.random(), rng.random()
        expected.append(429 if status_draw < 0.3 else 503 if status_draw < 0.5 else 200)
    assert first == expected


def test_latency_is_added_to_gateway_requests_only(sandbox, balance, http):
    sandbox.set_faults(latency_ms=150)
    started = time.perf_counter()
    assert balance().status_code == 200
    assert time.perf_counter() - started >= 0.15
    started = time.perf_counter()
    http.get(f"{sandbox.url}/_sandbox/health")
    assert time.perf_counter() - started < 0.15
    assert sandbox.stats()["faults"]["injected"]["latency"] == 1


def test_paths_restrict_faults_and_admin_endpoints_are_never_faulted(sandbox, balance, http):
    sandbox.set_faults(rate_503=1.0, paths=["/getdata/"])
    assert balance().status_code == 200
    faulted = http.post(f"{sandbox.url}/getdata/getalldevices", data={"token": "x"})
    assert (faulted.status_code, faulted.json()["error"]) == (503, 1)
    sandbox.set_faults(rate_429=1.0)
    assert http.get(f"{sandbox.url}/_sandbox/stats").status_code == 200
    assert http.get(f"{sandbox.url}/").status_code == 200
    assert sandbox.faults()["rate_429"] == 1.0


def test_commit_then_drop_stores_the_message_but_drops_the_connection(sandbox, http):
    sandbox.set_faults(commit_then_drop=1.0)
    with pytest.raises((requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        http.post(f"{sandbox.url}/v1/message/send", json=SEND, headers=SMSTOOLS_AUTH)
    (stored,) = sandbox.messages("smstools")
    assert (stored["recipient"], stored["body"], stored["count"]) == ("+" + NL, "Hi", 1)
    assert sandbox.stats()["faults"]["injected"]["commit_then_drop"] == 1
    # Only message-creating requests are dropped.
    assert http.get(f"{sandbox.url}/v1/balance", headers=SMSTOOLS_AUTH).status_code == 200
    with pytest.raises((requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        body = {"recipient": NL, "sender_id": "Shop", "type": "plain", "message": "Hi"}
        http.post(f"{sandbox.url}/api/http/sms/send", json=body, headers=TEXTBOOST_AUTH)
    assert len(sandbox.messages("textboost")) == 1


def test_commit_then_drop_rate_applies_to_sends_and_every_send_is_stored(sandbox, http):
    sandbox.set_faults(commit_then_drop=0.5, seed=11)
    dropped = 0
    for i in range(60):
        try:
            response = http.post(
                f"{sandbox.url}/v1/message/send", json={**SEND, "message": f"m{i}"}, headers=SMSTOOLS_AUTH
            )
            assert response.status_code == 200
        except requests.ConnectionError:
            dropped += 1
    assert 15 <= dropped <= 45
    assert sandbox.stats()["faults"]["injected"]["commit_then_drop"] == dropped
    assert len(sandbox.messages("smstools")) == 60


@pytest.mark.parametrize(
    "settings",
    [{"rate_429": 1.5}, {"rate_429": 0.6, "rate_500": 0.6}, {"latency_ms": -1}, {"unknown": 1}],
)
def test_invalid_fault_settings_are_refused(sandbox, http, settings):
    response = http.post(f"{sandbox.url}/_sandbox/faults", json=settings)
    assert response.status_code == 400
    assert sandbox.faults()["rate_429"] == 0.0


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ('{"latency_ms": 1e300}', "latency_ms must be between 0 and 60000"),
        ('{"latency_ms": 60001}', "latency_ms must be between 0 and 60000"),
        ('{"latency_ms": NaN}', "NaN is not a JSON number"),
        ('{"latency_ms": Infinity}', "Infinity is not a JSON number"),
        ('{"latency_ms": "1e300"}', "latency_ms must be between 0 and 60000"),
        ('{"retry_after": 1e300}', "retry_after must be between 0 and 3600"),
        ('{"retry_after": NaN}', "NaN is not a JSON number"),
        ('{"rate_500": NaN}', "NaN is not a JSON number"),
        ('{"rate_429": "often"}', "rate_429 must be between 0 and 1"),
        ('{"seed": 1e300}', "seed must be an integer"),
        ('{"latency_ms": 1e400}', "latency_ms must be between 0 and 60000"),  # parsed as an infinity
        ('{"seed": Infinity}', "Infinity is not a JSON number"),
        ('{"paths": 5}', "paths must be a list"),
    ],
)
def test_absurd_fault_settings_are_refused_with_a_clear_message(sandbox, http, balance, body, named):
    sandbox.set_faults(latency_ms=1)
    response = http.post(
        f"{sandbox.url}/_sandbox/faults", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert named in response.json()["detail"]
    assert sandbox.faults()["latency_ms"] == 1  # the settings in force did not change
    assert balance().status_code == 200


def test_the_cli_refuses_an_absurd_latency():
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_sms.sandbox", "--latency-ms", "1e300"],
        capture_output=True,
        text=True,
        timeout=30,  # the old sandbox started (and served forever) with it
    )
    assert result.returncode == 2 and "latency_ms must be between 0 and 60000" in result.stderr


def test_clear_faults_restores_the_defaults(sandbox, balance):
    sandbox.set_faults(rate_500=1.0)
    assert balance().status_code == 500
    sandbox.clear_faults()
    assert balance().status_code == 200
    assert sandbox.faults() == {
        "rate_429": 0.0,
        "retry_after": 1,
        "rate_500": 0.0,
        "rate_503": 0.0,
        "latency_ms": 0,
        "commit_then_drop": 0.0,
        "seed": 0,
        "paths": None,
    }


def test_faults_can_be_configured_at_start_up():
    with run_sandbox(rate_503=1.0, fault_paths="/v1/", seed=9) as server:
        assert requests.get(f"{server.url}/v1/balance", headers=SMSTOOLS_AUTH).status_code == 503
        assert requests.get(f"{server.url}/api/v3/balance", headers=TEXTBOOST_AUTH).status_code == 200
        assert server.faults()["paths"] == ["/v1/"] and server.faults()["seed"] == 9
