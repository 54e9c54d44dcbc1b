"""One hook used from several threads at once (a bulk send's requests in flight), against the
sandbox over HTTP: one token fetch for all of them, a connection each, a 429 that holds them all."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from airflow_provider_sms.hooks import get_gateway_hook
from airflow_provider_sms.hooks.base import DEFAULT_POOL_SIZE, _RateLimiter

THREADS = 8


def _together(function, threads: int = THREADS) -> list:
    """``function()`` in ``threads`` threads released at the same moment; their results."""
    barrier = threading.Barrier(threads, timeout=30)

    def call(_):
        barrier.wait()
        return function()

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(call, range(threads)))


def test_threads_share_one_token_and_renew_it_once(frozen_sandbox, sms_conn_env):
    # The clock stands still: each answer carries the phone's "lastseen" time, to the second, and a
    # running clock once turned a second between two threads' answers (CI).
    sandbox = frozen_sandbox
    hook = get_gateway_hook(sms_conn_env["smsgateway24"])
    hook.use_threads(THREADS)
    results = _together(hook.get_all_devices)
    assert all(r == results[0] for r in results)
    assert sandbox.request_count(gateway="smsgateway24", path_contains="gettoken") == 1

    sandbox.expire_tokens()  # every thread's next call is refused: one of them renews the token
    _together(hook.get_all_devices)
    assert sandbox.request_count(gateway="smsgateway24", path_contains="gettoken") == 2
    assert sandbox.request_count(gateway="smsgateway24", path_contains="getalldevices") >= 2 * THREADS


def test_use_threads_gives_the_session_a_connection_per_thread(sms_conn_env):
    hook = get_gateway_hook(sms_conn_env["smstools"])
    session = hook.session
    hook.use_threads(4)  # within the default pool: the session is kept
    assert hook.session is session
    hook.use_threads(40)
    assert hook.session is not session
    adapter = hook.session.get_adapter(hook.base_url)
    assert adapter._pool_maxsize == 41 > DEFAULT_POOL_SIZE


def test_a_pause_holds_the_other_threads_but_not_the_one_told_to_wait(monkeypatch):
    now = [100.0]
    monkeypatch.setattr("airflow_provider_sms.hooks.base.time.monotonic", lambda: now[0])
    limiter = _RateLimiter(None)
    assert limiter.reserve() == 0
    limiter.pause(2.0)  # this thread got the 429 and waits in its own retry
    assert limiter.reserve() == 0
    waits = _together(limiter.reserve, threads=3)
    assert waits == [2.0, 2.0, 2.0]
    now[0] += 2.0
    assert _together(limiter.reserve, threads=3) == [0, 0, 0]
