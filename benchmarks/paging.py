"""Paging: what page 1, page 500 and the last page of each sandbox list cost on a state of N items.

A list page should cost its size, not its offset (issue 20). Each gateway in turn gets N messages
(prebuilt batch requests, not timed; a cycle of 100,000 numbers, so the sandbox validates each
number once; no simulated replies), then the pages named below are fetched in turns, ``repeats``
times, over one keep-alive connection, and each one's median kept. The ratio page 500 / page 1
comes from the same run.

TextBoost's ``GET /sms`` lists received replies among the sent messages, so it is measured a
second time on N messages of which about ``reply_share`` (10%) get a simulated reply, arriving
within ``REPLY_SECONDS`` of delivery: interleaved with the messages sent meanwhile.

    python -m benchmarks --only paging                       # 1M messages per gateway, 1M contacts
    python -m benchmarks --only paging --paging-items 100000 # smaller
    python -m benchmarks.paging --gateways textboost --contacts 0  # TextBoost only, with replies
    # against a sandbox already running, e.g. started from an older checkout:
    python -m benchmarks.paging --url http://127.0.0.1:8025 --items 1000000
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from itertools import cycle, islice
from typing import Any

import requests

from benchmarks.common import CAMPAIGN_TEXT, CREDENTIALS, NumberPool, Table, e164, log

DISTINCT_NUMBERS = 100_000
SMSTOOLS_LIMIT = 2000  # the largest page each API allows
TEXTBOOST_PER_PAGE = 1000
SG24_TIME = "%Y-%m-%d %H:%M:%S"
REPLY_SECONDS = 60  # a simulated reply arrives 6 to 60 s after delivery (2 s)


def _numbers(count: int, pool: NumberPool) -> list[str]:
    distinct = e164(pool.take(min(count, DISTINCT_NUMBERS)))
    return list(islice(cycle(distinct), count))


def _post_all(session: requests.Session, url: str, calls: list[tuple[str, dict[str, str], bytes]]) -> None:
    for path, headers, body in calls:
        response = session.post(url + path, data=body, headers=headers, timeout=120)
        if response.status_code != 200:
            raise RuntimeError(f"{path}: HTTP {response.status_code}: {response.text[:200]}")


def _timed_ms(session: requests.Session, method: str, url: str, **kwargs: Any) -> float:
    """Wall time of one request in ms; the answer is checked."""
    started = time.perf_counter()
    response = session.request(method, url, timeout=120, **kwargs)
    body = response.content
    elapsed = time.perf_counter() - started
    if response.status_code != 200 or not body:
        raise RuntimeError(f"{url}: HTTP {response.status_code}: {body[:200]!r}")
    return elapsed * 1000


def _medians_ms(
    session: requests.Session, calls: dict[Any, tuple[str, str, dict[str, Any]]], repeats: int
) -> dict[Any, float]:
    """Median wall time of each call; the calls take turns (one unmeasured round first), so a
    machine that gets busier during the measurement slows them all alike."""
    times: dict[Any, list[float]] = {name: [] for name in calls}
    for attempt in range(repeats + 1):
        for name, (method, url, kwargs) in calls.items():
            elapsed = _timed_ms(session, method, url, **kwargs)
            if attempt:
                times[name].append(elapsed)
    return {name: statistics.median(values) for name, values in times.items()}


def _sandbox_now(session: requests.Session, url: str) -> float:
    now = session.get(f"{url}/_sandbox/health", timeout=30).json()["now"]
    return datetime.strptime(now, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


def _fill_messages(session: requests.Session, url: str, gateway: str, numbers: list[str]) -> float:
    """Send ``numbers`` through the gateway's batch endpoint; returns the sandbox time after all but
    the last ``SMSTOOLS_LIMIT`` (a second apart, so a ``begindate`` finds exactly those)."""
    from benchmarks.send import _sg24_token, ceiling_payloads

    token = _sg24_token(session, url) if gateway == "smsgateway24" else None
    batch = 1000 if gateway == "smstools" else 500
    head, tail = numbers[:-SMSTOOLS_LIMIT], numbers[-SMSTOOLS_LIMIT:]
    _post_all(session, url, ceiling_payloads(gateway, head, CAMPAIGN_TEXT, batch, token))
    time.sleep(1.1)
    since = _sandbox_now(session, url)
    _post_all(session, url, ceiling_payloads(gateway, tail, CAMPAIGN_TEXT, batch, token))
    return since


def _fill_smstools_contacts(session: requests.Session, url: str, numbers: list[str]) -> int:
    """N contacts in one new group (batches of 500); returns the group's id."""
    creds = CREDENTIALS["smstools"]
    headers = {
        "X-Client-Id": creds["login"],
        "X-Client-Secret": creds["password"],
        "Content-Type": "application/json",
    }
    group = session.post(f"{url}/v1/groups", json={"name": "Paging"}, headers=headers).json()["ID"][0]
    calls = []
    for start in range(0, len(numbers), 500):
        rows = [{"phone": n.lstrip("+"), "groupid": group} for n in numbers[start : start + 500]]
        calls.append(("/v1/contact", headers, json.dumps(rows).encode()))
    _post_all(session, url, calls)
    return int(group)


def _pages(items: int, size: int) -> tuple[int, int, int]:
    last = max(1, -(-items // size))
    return 1, min(500, last), last


def _fill_with_replies(
    session: requests.Session, url: str, numbers: list[str], reply_share: float
) -> tuple[int, int]:
    """Send ``numbers`` through TextBoost with replies from about ``reply_share`` of them (each
    number replies once, to its first SMS), then move the clock until all have arrived; returns
    (messages, replies arrived)."""
    rate = min(1.0, reply_share * len(numbers) / len(set(numbers)))
    session.post(
        f"{url}/_sandbox/reply-simulation", json={"rate": rate, "seconds": REPLY_SECONDS}
    ).raise_for_status()
    _fill_messages(session, url, "textboost", numbers)
    session.post(f"{url}/_sandbox/advance", json={"seconds": REPLY_SECONDS + 5}).raise_for_status()
    stats = session.get(f"{url}/_sandbox/stats", timeout=60).json()
    arrived = stats["replies"]["by_gateway"]["textboost"]
    if arrived["pending"]:
        raise RuntimeError(f"replies not all arrived: {arrived}")
    return stats["messages"]["by_gateway"]["textboost"]["total"], arrived["arrived"]


def run(
    url: str,
    gateways: list[str],
    items: int,
    contacts: int,
    pool: NumberPool,
    repeats: int = 11,
    reply_share: float = 0.1,
) -> tuple[list[Table], dict[str, Any]]:
    table = Table(
        f"Paging: page 1, page 500 and the last page of each sandbox list ({items:,} messages per gateway)",
        ["gateway", "list", "items", "page size", "page 1 ms", "page 500 ms", "last page", "last page ms", "page 500 / page 1"],
    )  # fmt: skip
    page_table = Table(
        f"Status page GET / on {items:,} messages of one gateway",
        ["gateway", "messages", "first look ms", "next looks ms"],
    )
    numbers: dict[str, Any] = {}
    session = requests.Session()
    session.trust_env = False
    auth = {
        "smstools": {"X-Client-Id": CREDENTIALS["smstools"]["login"], "X-Client-Secret": CREDENTIALS["smstools"]["password"]},
        "textboost": {"Authorization": f"Bearer {CREDENTIALS['textboost']['password']}", "Accept": "application/json"},
    }  # fmt: skip

    def measure(
        gateway: str, name: str, total: int, size: int, method: str, path: str, params: Any
    ) -> dict[str, Any]:
        first, middle, last = _pages(total, size)
        calls = {
            page: (method, url + path, {"params": params(page, size), "headers": auth.get(gateway)})
            for page in (first, middle, last)
        }
        times = _medians_ms(session, calls, repeats)
        ratio = times[middle] / times[first]
        table.add(gateway, name, total, size, times[first], times[middle], last, times[last], f"{ratio:.2f}x")
        numbers[f"{gateway} {name}"] = {"items": total, "size": size, "ms": times, "ratio": ratio}
        log(f"{gateway} {name}: page 1 {times[first]:.1f} ms, page {middle} {times[middle]:.1f} ms")
        return numbers[f"{gateway} {name}"]

    try:
        for gateway in gateways:
            session.post(f"{url}/_sandbox/reset", timeout=60).raise_for_status()
            # No simulated replies: TextBoost would list them among its messages (measured below).
            session.post(f"{url}/_sandbox/reply-simulation", json={"rate": 0}).raise_for_status()
            log(f"paging: filling {items:,} {gateway} messages")
            since = _fill_messages(session, url, gateway, _numbers(items, pool))
            if gateway == "smstools":
                measure(
                    gateway, "GET /v1/message/logging", items, SMSTOOLS_LIMIT, "GET", "/v1/message/logging",
                    lambda page, size: {"page": page, "limit": size},
                )  # fmt: skip
            elif gateway == "textboost":
                measure(
                    gateway, "GET /api/v3/sms", items, TEXTBOOST_PER_PAGE, "GET", "/api/v3/sms",
                    lambda page, size: {"page": page, "per_page": size},
                )  # fmt: skip
            else:  # getallsms is not paged: the newest messages by begindate, the oldest by enddate
                from benchmarks.send import _sg24_token

                token = _sg24_token(session, url)
                begin = datetime.fromtimestamp(int(since), UTC).strftime(SG24_TIME)
                first = _sandbox_now(session, url) - 10**6  # before every message
                end = datetime.fromtimestamp(first, UTC).strftime(SG24_TIME)
                getallsms = f"{url}/getdata/getallsms"
                calls = {
                    "newest": ("POST", getallsms, {"data": {"token": token, "begindate": begin}}),
                    "none": ("POST", getallsms, {"data": {"token": token, "enddate": end}}),
                }
                times = _medians_ms(session, calls, repeats)
                newest, none = times["newest"], times["none"]
                count = session.post(
                    f"{url}/getdata/getallsms", data={"token": token, "begindate": begin, "onlycount": 1}
                ).json()["count"]
                table.add(
                    gateway, f"getallsms begindate (newest {count:,})", items, "", newest, "", "", "", ""
                )
                table.add(gateway, "getallsms enddate before the first (0)", items, "", none, "", "", "", "")
                numbers["smsgateway24 getallsms"] = {
                    "items": items,
                    "newest": count,
                    "ms": newest,
                    "none_ms": none,
                }
                log(f"smsgateway24 getallsms: newest {count:,} in {newest:.1f} ms, none in {none:.1f} ms")
            time.sleep(2.5)  # past delivery: every status final
            first_look = _timed_ms(session, "GET", f"{url}/")
            next_look = _medians_ms(session, {"page": ("GET", f"{url}/", {})}, 5)["page"]
            page_table.add(gateway, items, first_look, next_look)
            numbers[f"{gateway} status page"] = {"first_ms": first_look, "next_ms": next_look}
            log(f"status page on {items:,} {gateway} messages: {first_look:.0f} ms, then {next_look:.1f} ms")
            if gateway == "textboost" and reply_share:
                session.post(f"{url}/_sandbox/reset", timeout=60).raise_for_status()
                log(f"paging: filling {items:,} textboost messages, about {reply_share:.0%} answered")
                sent, received = _fill_with_replies(session, url, _numbers(items, pool), reply_share)
                result = measure(
                    gateway, "GET /api/v3/sms with replies", sent + received, TEXTBOOST_PER_PAGE, "GET",
                    "/api/v3/sms", lambda page, size: {"page": page, "per_page": size},
                )  # fmt: skip
                result.update(messages=sent, replies=received)
                log(f"textboost list: {sent:,} messages and {received:,} replies")
        if contacts:
            session.post(f"{url}/_sandbox/reset", timeout=60).raise_for_status()
            log(f"paging: filling {contacts:,} Smstools contacts")
            group = _fill_smstools_contacts(session, url, _numbers(contacts, pool))
            for name, path in (
                ("GET /v1/contact", "/v1/contact"),
                ("GET /v1/groups/{id}", f"/v1/groups/{group}"),
            ):
                measure(
                    "smstools", name, contacts, SMSTOOLS_LIMIT, "GET", path,
                    lambda page, size: {"page": page, "limit": size},
                )  # fmt: skip
        session.post(f"{url}/_sandbox/reset", timeout=60).raise_for_status()
    finally:
        session.close()
    table.notes.append("page 500 is the last page where a list has fewer")
    table.notes.append(
        f"GET /api/v3/sms with replies: {items:,} messages to a cycle of {DISTINCT_NUMBERS:,} numbers, "
        f"about {reply_share:.0%} of them answered (each number once, to its first SMS, within "
        f"{REPLY_SECONDS} s of delivery); items = messages + replies, merged by time"
    )
    table.notes.append(
        "median of the request's wall time (send, serve, read) over one keep-alive connection, the "
        "pages of a list taking turns; "
        "a page of 2,000 Smstools or 1,000 TextBoost messages is mostly rendering and JSON"
    )
    table.notes.append(
        "getallsms has no pages: it answers every match; begindate and enddate are found by "
        "bisection on the creation time, so its cost follows the matches, not the messages stored"
    )
    page_table.notes.append(
        "first look: the first GET / after the messages arrived; next looks: the median of 5 more. "
        "The page keeps its counts incrementally, so a look reads only what changed since the last"
    )
    return [table, page_table], numbers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.paging", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running sandbox (default: start one as a subprocess)")
    parser.add_argument("--items", type=int, default=1_000_000, help="messages per gateway")
    parser.add_argument("--contacts", type=int, default=1_000_000, help="Smstools contacts (0: none)")
    parser.add_argument("--gateways", default="smstools,smsgateway24,textboost")
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument(
        "--reply-share",
        type=float,
        default=0.1,
        help="TextBoost messages answered in the list with replies (0: skip)",
    )
    args = parser.parse_args(argv)
    gateways = [part for part in args.gateways.split(",") if part]
    sandbox = None
    url = args.url
    if url is None:
        from airflow_provider_sms.sandbox.testing import start_sandbox_process

        sandbox = start_sandbox_process(delivery_seconds=2)
        url = sandbox.url
    try:
        tables, _ = run(
            url.rstrip("/"), gateways, args.items, args.contacts, NumberPool(), args.repeats, args.reply_share
        )
    finally:
        if sandbox is not None:
            sandbox.stop()
    for table in tables:
        print(table.text())
        print()
        print(table.markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
