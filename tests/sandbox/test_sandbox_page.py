"""The sandbox's status page ``/`` shows what the state holds: per-gateway counts and charts (the
same numbers ``/_sandbox/stats`` counts by scanning every message), the newest messages escaped,
the fault settings in words, and nothing loaded from another host."""

from __future__ import annotations

import json
import random
import re
import subprocess
from collections import Counter, defaultdict
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import pytest
import requests

from airflow_provider_sms.sandbox import delivery
from airflow_provider_sms.sandbox.faults import FaultConfig
from airflow_provider_sms.sandbox.page import LATEST, TERMINAL, fault_sentences
from airflow_provider_sms.sandbox.testing import SandboxServer

from .helpers import SG24_LOGIN, SMSTOOLS_AUTH, TEXTBOOST_AUTH, later, sandbox_now

GATEWAYS = ("smstools", "smsgateway24", "textboost")
URL = re.compile(r"""(?:https?:)?//[^\s"'<>)]+""")


class PageReader(HTMLParser):
    """The numbers a page carries in ``data-*`` attributes, the latest-messages rows, the bars'
    tooltips and every start tag."""

    def __init__(self) -> None:
        super().__init__()
        self.numbers: dict[str, dict[str, str]] = defaultdict(dict)
        self.tags: list[str] = []
        self.rows: list[list[str]] = []
        self.titles: list[str] = []
        self._key: tuple[str, str] | None = None
        self._cell: list[str] | None = None
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        values = dict(attrs)
        if "data-gateway" in values:
            gateway = values["data-gateway"] or ""
            name = values.get("data-status") or next(
                key[5:] for key in values if key.startswith("data-") and key != "data-gateway"
            )
            self._key = (gateway, name)
            self.numbers[gateway][name] = ""
        if tag == "tr":
            self.rows.append([])
        if tag == "td":
            self._cell = []
        self._in_title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None and self.rows:
            self.rows[-1].append("".join(self._cell))
            self._cell = None
        if tag in ("td", "span", "b"):
            self._key = None
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._key is not None:
            gateway, name = self._key
            self.numbers[gateway][name] += data
        if self._cell is not None:
            self._cell.append(data)
        if self._in_title:
            self.titles.append(data)


def read_page(sandbox: SandboxServer, http: requests.Session) -> tuple[str, PageReader]:
    response = http.get(f"{sandbox.url}/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    reader = PageReader()
    reader.feed(response.text)
    return response.text, reader


def number(text: str) -> int:
    return int(text.replace(",", ""))


class Traffic:
    """Messages sent through the real HTTP API of each gateway, remembered in the order sent."""

    def __init__(self, sandbox: SandboxServer, http: requests.Session) -> None:
        self.sandbox, self.http = sandbox, http
        self.token = http.post(f"{sandbox.url}/getdata/gettoken", data=SG24_LOGIN).json()["token"]
        self.sent: list[str] = []  # ids, oldest first
        self.serial = 0

    def numbers(self, count: int) -> list[str]:
        tails = ["13", "66", "01", "42", "77"]  # undelivered, failed, delivered...
        self.serial += 1
        return [f"3161{self.serial:03d}{i:02d}{tails[i % len(tails)]}" for i in range(count)]

    def smstools(self, count: int, text: str = "Hello", **extra: Any) -> list[str]:
        body = {"message": text, "sender": "Shop", "to": self.numbers(count), **extra}
        ids = self.http.post(f"{self.sandbox.url}/v1/message/send", headers=SMSTOOLS_AUTH, json=body).json()
        self.sent += ids["messageids"]
        return ids["messageids"]

    def smsgateway24(self, count: int, text: str = "Hello") -> None:
        rows = [{"sendto": "+" + n, "body": text, "device_id": 1001} for n in self.numbers(count)]
        data = {"datajson": json.dumps({"token": self.token, "smsdata": rows})}
        answer = self.http.post(f"{self.sandbox.url}/getdata/addalotofsms", data=data).json()
        self.sent += [str(sms_id) for sms_id in answer["sms_ids"]]

    def textboost(self, count: int, text: str = "Hello") -> None:
        sms = {
            "recipient": ",".join(self.numbers(count)),
            "sender_id": "Shop",
            "type": "plain",
            "message": text,
        }
        answer = self.http.post(
            f"{self.sandbox.url}/api/v3/sms/send", headers=TEXTBOOST_AUTH, json=sms
        ).json()
        data = answer["data"] if isinstance(answer["data"], list) else [answer["data"]]
        self.sent += [row["uid"] for row in data]


def replies_arrived(sandbox: SandboxServer, gateway: str) -> int:
    """The gateway's replies the sandbox clock has reached, counted by scanning its reply table."""
    state = sandbox.app.state.sandbox
    now = state.now()
    return sum(reply.received_at <= now for reply in dict.values(state.replies[gateway].rows))


def assert_page_matches_stats(sandbox: SandboxServer, http: requests.Session) -> PageReader:
    """Every number of the page equals what ``/_sandbox/stats`` counts by scanning every message
    (the replies received: what a scan of the replies counts)."""
    _, page = read_page(sandbox, http)
    stats = sandbox.stats()
    for gateway in GATEWAYS:
        counts = stats["messages"]["by_gateway"][gateway]
        shown = page.numbers[gateway]
        assert number(shown["total"]) == counts["total"]
        assert number(shown["requests"]) == stats["requests"]["by_gateway"][gateway]
        assert number(shown["replies"]) == replies_arrived(sandbox, gateway), gateway
        on_page = {
            status: number(text)
            for status, text in shown.items()
            if status not in ("total", "requests", "rate", "replies")
        }
        expected = counts["by_normalized_status"]
        assert {s: n for s, n in on_page.items() if n} == expected, gateway
        finished = sum(expected.get(status, 0) for status in ("delivered", "undelivered", "failed"))
        if finished:
            rate = expected.get("delivered", 0) / finished
            assert shown["rate"] == f"{rate:.1%} of {finished:,} finished"
        else:
            assert shown["rate"] == "no message has finished yet"
    return page


def per_minute_on_page(page: PageReader) -> Counter[str]:
    """Messages per minute from the column charts' tooltips (``"HH:MM: count"``), all gateways."""
    counts: Counter[str] = Counter()
    for title in page.titles:
        match = re.fullmatch(r"(\d\d:\d\d): ([\d,]+)", title)
        if match:
            counts[match[1]] += number(match[2])
    return counts


def test_the_page_shows_the_numbers_the_state_holds_as_it_changes(frozen_sandbox, http):
    sandbox = frozen_sandbox
    # The clock stands still at the first second of a minute: the messages before the 65-second
    # step fall in one minute and those after it in the next, whatever the wall clock does (with
    # a running clock a minute once turned between two sends, in CI).
    now = sandbox_now(sandbox)
    sandbox.advance(61 - now.second - now.microsecond / 1e6)
    traffic = Traffic(sandbox, http)
    assert_page_matches_stats(sandbox, http)  # empty
    traffic.smstools(10)
    traffic.smsgateway24(7)
    traffic.textboost(5)
    scheduled = traffic.smstools(3, date=later(sandbox, "%Y-%m-%d %H:%M", minutes=30))
    assert_page_matches_stats(sandbox, http)  # all queued (and 3 scheduled)
    sandbox.advance(1.1)  # half way: sent, or SmsGateway24's intermediate statuses
    traffic.smstools(4)
    assert_page_matches_stats(sandbox, http)
    sandbox.advance(65)  # the first ones final; a new minute for the next ones
    traffic.smsgateway24(6)
    traffic.textboost(2)
    page = assert_page_matches_stats(sandbox, http)
    # The columns count the messages accepted in each minute, all gateways together.
    minutes = Counter(
        datetime.strptime(m["created_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).strftime("%H:%M")
        for m in sandbox.messages()
    )
    assert {k: v for k, v in per_minute_on_page(page).items() if v} == minutes and len(minutes) == 2
    # A removal (a cancelled message) and a reset: the page counts again from the start. The
    # cancelled one would fail, the one sent instead will not be delivered: the same count of
    # messages, not the same statuses.
    assert http.delete(f"{sandbox.url}/v1/outbox/{scheduled[1]}", headers=SMSTOOLS_AUTH).json()["deleted"]
    traffic.smstools(1)
    assert_page_matches_stats(sandbox, http)
    sandbox.advance(3600)  # everything final, the scheduled ones too
    assert_page_matches_stats(sandbox, http)
    sandbox.reset()
    page = assert_page_matches_stats(sandbox, http)
    assert all(number(page.numbers[gateway]["total"]) == 0 for gateway in GATEWAYS)


def test_each_card_counts_the_replies_its_gateway_received_by_the_sandbox_clock(sandbox, http):
    sandbox.set_reply_simulation(rate=1, seconds=100)  # every delivered number replies within 100 s
    traffic = Traffic(sandbox, http)
    traffic.smstools(5)
    traffic.smsgateway24(5)
    traffic.textboost(10)
    sandbox.inject_reply("smstools", "+31612345678", "Who is this?")
    in_an_hour = later(sandbox, "%Y-%m-%dT%H:%M:%S", hours=1)
    sandbox.inject_reply("smsgateway24", "+31612345678", "STOP", received_at=in_an_hour)

    def shown() -> dict[str, int]:
        page = assert_page_matches_stats(sandbox, http)
        return {gateway: number(page.numbers[gateway]["replies"]) for gateway in GATEWAYS}

    assert shown() == {"smstools": 1, "smsgateway24": 0, "textboost": 0}  # only the injected one yet
    sandbox.advance(2 + 100)  # delivered, and every simulated reply in (3 of 5 numbers are delivered)
    assert shown() == {"smstools": 4, "smsgateway24": 3, "textboost": 6}
    sandbox.advance(3600)
    assert shown() == {"smstools": 4, "smsgateway24": 4, "textboost": 6}
    text, _ = read_page(sandbox, http)
    assert "data-replies>6</span> replies received" in text
    sandbox.reset()
    assert shown() == dict.fromkeys(GATEWAYS, 0)


def test_latest_messages_are_the_newest_hundred_newest_first(sandbox, http):
    traffic = Traffic(sandbox, http)
    for round_ in range(9):
        traffic.smstools(5)
        sandbox.advance(1)
        traffic.smsgateway24(4)
        sandbox.advance(1)
        traffic.textboost(5 if round_ % 2 else 1)
        sandbox.advance(1)
    assert len(traffic.sent) > LATEST
    _, page = read_page(sandbox, http)
    rows = [row for row in page.rows if len(row) == 8]  # the latest-messages table
    assert [row[2] for row in rows] == traffic.sent[::-1][:LATEST]
    stored = {str(m["id"]): m for m in sandbox.messages()}
    for row in rows:
        message = stored[row[2]]
        assert (row[3], row[5], row[6]) == (
            message["recipient"],
            message["normalized_status"],
            str(message["status"]),
        )


HOSTILE = [
    "<script>alert('x')</script>",
    '"><img src=x onerror=alert(1)>',
    "</td></tr></table><h1>forged</h1>",
    "Fish & chips &amp; <b>bold</b> -- ]]> <!-- comment",
]


def test_a_hostile_message_text_is_shown_as_text(sandbox, http):
    def page_after_sending(texts: list[str]) -> tuple[str, PageReader]:
        sandbox.reset()
        traffic = Traffic(sandbox, http)
        for text in texts:
            traffic.smstools(1, text)
            traffic.smsgateway24(1, text)
            traffic.textboost(1, text)
        return read_page(sandbox, http)

    _, plain = page_after_sending(["Hello"] * len(HOSTILE))
    html, hostile = page_after_sending(HOSTILE)
    assert hostile.tags == plain.tags  # not one element more: every text stayed text
    cells = [row[4] for row in hostile.rows if len(row) == 8]
    assert sorted(cells) == sorted(HOSTILE * 3)  # and each comes back verbatim
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html


def test_fault_settings_read_as_sentences(sandbox, http):
    html, _ = read_page(sandbox, http)
    assert "No fault is injected: every gateway request is answered as the gateway would." in html
    assert "{&#x27;rate_429" not in html and "{'rate_429" not in html
    sandbox.set_faults(
        rate_429=0.1, retry_after=2, rate_503=0.005, latency_ms=50, commit_then_drop=0.25, paths=["/v1/"]
    )
    html, _ = read_page(sandbox, http)
    where = "gateway requests whose path contains “/v1/”"
    assert f"Every one of the {where} waits 50 ms before it is handled." in html
    assert f"10% of the {where} are answered 429 Too Many Requests with Retry-After: 2 s at once" in html
    assert f"0.5% of the {where} are answered 503 Service Unavailable at once" in html
    assert "25% of the message-creating requests among them" in html
    assert "seeded with 0" in html and "500 Internal Server Error" not in html
    assert "Injected since the last reset: 429: 0, 500: 0, 503: 0, commit_then_drop: 0, latency: 0" in html


def test_fault_sentences_name_every_active_fault_and_only_those():
    assert fault_sentences(FaultConfig()) == [
        "No fault is injected: every gateway request is answered as the gateway would."
    ]
    sentences = fault_sentences(FaultConfig(rate_500=0.05, seed=3))
    assert sentences == [
        "5% of the gateway requests are answered 500 Internal Server Error at once, without being "
        "processed: nothing is stored, and sending again is safe.",
        "Which request gets which fault is drawn from a random sequence seeded with 3: the same "
        "requests in the same order meet the same faults.",
    ]


def test_the_page_loads_nothing_from_another_host_and_links_the_offline_api_page(sandbox, http):
    Traffic(sandbox, http).smstools(3)
    html, page = read_page(sandbox, http)
    assert [url for url in URL.findall(html) if not url.startswith(sandbox.url)] == []
    assert re.findall(r"<script|<link|<img|<iframe|@import|url\(", html, re.IGNORECASE) == []
    assert page.tags.count("svg") == 3 * 4  # funnel, statuses, per minute, delivery rate per gateway
    assert 'href="/docs"' in html
    docs = http.get(f"{sandbox.url}/docs")
    assert docs.status_code == 200 and "/v1/message/send" in docs.text


def test_headless_chromium_renders_the_page_with_its_numbers(sandbox, http, tmp_path):
    from tests.support.browser import SAVED, artefacts, find_chromium

    chromium, why = find_chromium()  # installs Debian's chromium where it is missing and may be
    if chromium is None:
        pytest.skip(why)
    traffic = Traffic(sandbox, http)
    for _ in range(3):
        traffic.smstools(20)
        traffic.smsgateway24(15)
        traffic.textboost(10)
        sandbox.advance(70)
    stats = sandbox.stats()["messages"]["by_gateway"]
    folder = artefacts()  # $SMS_ARTEFACTS or artefacts/, beside the campaigns pages' screenshots
    folder.mkdir(parents=True, exist_ok=True)
    screenshot = folder / "sandbox-page.png"
    flags = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    shot = subprocess.run(
        [*flags, f"--screenshot={screenshot}", "--window-size=1300,1800", f"{sandbox.url}/"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.returncode == 0, shot.stderr[-2000:]
    SAVED.append(screenshot.resolve())
    png = screenshot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert (int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")) == (1300, 1800)
    # The DOM as the browser built it carries the same numbers.
    dom = subprocess.run(
        [*flags, "--dump-dom", f"{sandbox.url}/"], capture_output=True, text=True, timeout=120
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    reader = PageReader()
    reader.feed(dom.stdout)
    for gateway in GATEWAYS:
        assert number(reader.numbers[gateway]["total"]) == stats[gateway]["total"]
        assert (
            number(reader.numbers[gateway]["delivered"])
            == stats[gateway]["by_normalized_status"]["delivered"]
        )
    assert reader.tags.count("svg") == 12
    # The API page it links renders in the browser too, with nothing but the sandbox to load from.
    docs = subprocess.run(
        [*flags, "--dump-dom", f"{sandbox.url}/docs"], capture_output=True, text=True, timeout=120
    )
    assert docs.returncode == 0 and "<code>/v1/message/logging</code>" in docs.stdout


def test_a_terminal_status_never_changes_again():
    """The page counts a message with a terminal status once and never reads it again."""
    rng = random.Random(5)
    for gateway, terminal in TERMINAL.items():
        assert terminal  # each gateway's delivered, undelivered and failed
        for _ in range(2000):
            outcome = rng.choice([None, delivery.DELIVERED, delivery.UNDELIVERED, delivery.FAILED])
            recipient = f"+3161234{rng.randrange(10000):04d}"
            send_at, now = rng.uniform(0, 100), rng.uniform(0, 110)
            raw = delivery.raw_status(gateway, recipient, send_at, now, 2.0, outcome)
            if raw in terminal and now >= send_at:
                later_now = now + rng.expovariate(0.1)
                assert delivery.raw_status(gateway, recipient, send_at, later_now, 2.0, outcome) == raw
