"""The status page ``/``: per-gateway charts, the latest messages, the fault settings in words.

Counting every message's status on each load cost about 4 s per million messages, on the event
loop, every 5 s while the page was open. ``Tally`` keeps the counts instead: a load reads only the
messages added since the last one and those whose status can still change (a status that ends
every delivery timeline it is in never changes again). The first look at a big state still reads
it all, in chunks that let gateway requests through in between.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from airflow_provider_sms.sandbox import charts, delivery
from airflow_provider_sms.sandbox.faults import FAULT_KINDS, FaultConfig, FaultInjector
from airflow_provider_sms.sandbox.ordered import OrderedRows
from airflow_provider_sms.sandbox.state import GATEWAYS, Message, SandboxState
from airflow_provider_sms.sandbox.validation import iso_utc

NORMALIZED_ORDER = (
    "scheduled",
    "queued",
    "sending",
    "sent",
    "delivered",
    "undelivered",
    "failed",
    "rejected",
    "received",
    "unknown",
)
COLORS = {
    "scheduled": "#b0bec5",
    "queued": "#90a4ae",
    "sending": "#64b5f6",
    "sent": "#1e88e5",
    "delivered": "#2e7d32",
    "undelivered": "#ef6c00",
    "failed": "#c62828",
    "rejected": "#6a1b9a",
    "received": "#00838f",
    "unknown": "#757575",
}
GATEWAY_COLORS = {"smstools": "#1565c0", "smsgateway24": "#00897b", "textboost": "#6d4c41"}
GATEWAY_NAMES = {"smstools": "Smstools", "smsgateway24": "SmsGateway24", "textboost": "TextBoost"}
FINISHED = ("delivered", "undelivered", "failed")  # delivery is over: the delivery rate's denominator
HANDED_ON = frozenset({"sent", "delivered", "undelivered"})  # left the gateway for the network
MINUTES = 30  # the per-minute charts show this many minutes up to the newest message
LATEST = 100
CHUNK = 20_000  # messages read between two yields to the event loop


def _terminal_statuses() -> dict[str, frozenset[str | int]]:
    """Per gateway, the raw statuses that end a delivery timeline and appear nowhere else in the
    gateway's timelines: a message showing one (once due) has its final status."""
    terminal = {}
    for gateway, timelines in delivery.TIMELINES.items():
        last = {steps[-1][1] for steps in timelines.values()}
        earlier = {raw for steps in timelines.values() for _, raw in steps[:-1]}
        terminal[gateway] = frozenset(last - earlier)
    return terminal


# Why not ask ``state.status(message, math.inf)``: a second status per message doubled the cost
# of a first look at a big state. A status outside these sets is simply read again next time.
TERMINAL = _terminal_statuses()


# ---------------------------------------------------------------------------------------------- counts
@dataclass
class GatewayTally:
    """What one gateway's messages add up to; see ``Tally``."""

    rows: OrderedRows[str, Message] | None = None
    epoch: int = -1
    read: int = 0  # messages read so far, in insertion order
    final: Counter[tuple[str, str]] = field(default_factory=Counter)  # (raw, normalised) → count
    pending: list[Message] = field(default_factory=list)  # read, status may still change
    per_minute: Counter[int] = field(default_factory=Counter)  # created per epoch minute
    finished_per_minute: dict[int, Counter[str]] = field(default_factory=dict)

    def _classify(
        self,
        state: SandboxState,
        messages: list[Message],
        now: float,
        seen: list[tuple[str, str]] | None = None,
    ) -> list[Message]:
        """Count the messages whose status at ``now`` is final (``TERMINAL``: it can never change
        again, the clock only moves forward) in ``final``; return the others. ``seen`` gets every
        message's (raw, normalised) status at ``now``.

        Why the lists: one pass of plain Python per message, the counting done by ``Counter`` in C;
        this is what a first look at a state of millions of messages costs.
        """
        status, normalized = state.status, state.normalized
        still, finals, minutes = [], [], []
        for message in messages:
            raw = status(message, now)
            key = (str(raw), normalized(message, raw, now))
            if seen is not None:
                seen.append(key)
            if raw in TERMINAL.get(message.gateway, ()) and now >= message.send_at:
                finals.append(key)
                minutes.append((int(message.created_at // 60), key[1]))
            else:
                still.append(message)
        self.final.update(finals)
        for (minute, normalized_status), count in Counter(minutes).items():
            self.finished_per_minute.setdefault(minute, Counter())[normalized_status] += count
        return still

    async def settle(self, state: SandboxState) -> None:
        """Move the messages whose status is final out of ``pending``, yielding between chunks."""
        now = state.now()
        pending, self.pending = self.pending, []
        still = []
        for start in range(0, len(pending), CHUNK):
            still += self._classify(state, pending[start : start + CHUNK], now)
            await asyncio.sleep(0)
        self.pending = still + self.pending  # + what was read meanwhile

    def counts(self, state: SandboxState, now: float) -> Counter[tuple[str, str]]:
        """(raw, normalised) → count at ``now``; settles what is final by then."""
        current = Counter(self.final)
        seen: list[tuple[str, str]] = []
        self.pending = self._classify(state, self.pending, now, seen)
        current.update(seen)  # the ones settled just now were in pending: counted once, here
        return current


@dataclass
class GatewaySummary:
    total: int
    by_status: Counter[str]  # raw status as text
    by_normalized: Counter[str]
    per_minute: Counter[int]
    finished_per_minute: dict[int, Counter[str]]
    requests: int
    replies: int = 0  # received by the sandbox clock (simulated or injected)


class Tally:
    """Per-gateway counts for the page, kept up to date incrementally (see the module docstring)."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.gateways = {gateway: GatewayTally() for gateway in GATEWAYS}

    def _read(self, gateway: str, limit: float) -> bool:
        """Read up to ``limit`` messages added since the last read (after a removal or a reset:
        from the start again); whether more are left."""
        rows = self.state.messages[gateway].rows
        tally = self.gateways[gateway]
        if tally.rows is not rows or tally.epoch != rows.epoch or tally.read > len(rows):
            tally = self.gateways[gateway] = GatewayTally(rows=rows, epoch=rows.epoch)
        batch = rows.values_between(tally.read, int(min(len(rows), tally.read + limit)))
        tally.read += len(batch)
        tally.per_minute.update([int(message.created_at // 60) for message in batch])
        tally.pending += batch
        return tally.read < len(rows)

    async def summarize(self) -> tuple[float, dict[str, GatewaySummary]]:
        """The sandbox time and each gateway's counts at that time."""
        for gateway in GATEWAYS:
            while self._read(gateway, CHUNK):
                await asyncio.sleep(0)  # a big first read: let gateway requests through meanwhile
        for gateway in GATEWAYS:
            await self.gateways[gateway].settle(self.state)
        # One consistent moment from here on: nothing yields until the page is rendered.
        for gateway in GATEWAYS:
            self._read(gateway, math.inf)
        now = self.state.now()
        requests = Counter[str]()
        for (gateway, _), count in self.state.requests.items():
            requests[gateway] += count
        summaries = {}
        for gateway, tally in self.gateways.items():
            counts = tally.counts(self.state, now)
            by_status, by_normalized = Counter[str](), Counter[str]()
            for (raw, normalized), count in counts.items():
                by_status[raw] += count
                by_normalized[normalized] += count
            summaries[gateway] = GatewaySummary(
                total=tally.read,
                by_status=by_status,
                by_normalized=by_normalized,
                per_minute=tally.per_minute,
                finished_per_minute=tally.finished_per_minute,
                requests=requests[gateway],
                replies=len(self.state.arrived_replies(gateway, now)),  # a bisection
            )
        return now, summaries


def latest_messages(state: SandboxState, limit: int = LATEST) -> list[Message]:
    """The ``limit`` newest messages of all gateways, newest first (reads ``limit`` per gateway)."""
    candidates: list[Message] = []
    for gateway in GATEWAYS:
        rows = state.messages[gateway].rows
        candidates += rows.values_between(max(0, len(rows) - limit), len(rows))
    candidates.sort(key=lambda message: (message.created_at, message.seq), reverse=True)
    return candidates[:limit]


# ---------------------------------------------------------------------------------------------- faults
def _percent(share: float) -> str:
    return f"{share * 100:.4g}%"


def fault_sentences(config: FaultConfig) -> list[str]:
    """What each active fault does, in words (one sentence each), or that none is active."""
    if not config.active:
        return ["No fault is injected: every gateway request is answered as the gateway would."]
    where = "gateway requests"
    if config.paths:
        where += " whose path contains " + " or ".join(f"“{part}”" for part in config.paths)
    sentences = []
    if config.latency_ms:
        sentences.append(f"Every one of the {where} waits {config.latency_ms:g} ms before it is handled.")
    answers = (
        (config.rate_429, f"429 Too Many Requests with Retry-After: {config.retry_after:g} s"),
        (config.rate_500, "500 Internal Server Error"),
        (config.rate_503, "503 Service Unavailable"),
    )
    for rate, answer in answers:
        if rate:
            sentences.append(
                f"{_percent(rate)} of the {where} are answered {answer} at once, without being "
                "processed: nothing is stored, and sending again is safe."
            )
    if config.commit_then_drop:
        sentences.append(
            f"{_percent(config.commit_then_drop)} of the message-creating requests among them (sends, "
            "batch sends, campaigns) that get no error are processed (the messages are stored and "
            "charged), then the connection is closed without an answer: the client cannot tell that "
            "they were accepted, and sending again blindly sends them twice."
        )
    sentences.append(
        f"Which request gets which fault is drawn from a random sequence seeded with {config.seed}: "
        "the same requests in the same order meet the same faults."
    )
    return sentences


# ---------------------------------------------------------------------------------------------- HTML
STYLE = """
body{font-family:sans-serif;margin:1.5em;color:#222;max-width:80em}
h1{margin-bottom:.2em}h2{margin-top:1.6em}
.gateways{display:flex;flex-wrap:wrap;gap:1.2em}
.card{border:1px solid #ddd;border-radius:6px;padding:.8em 1em;width:360px}
.card h3{margin:.1em 0 .4em}.card h4{margin:.8em 0 .3em;font-size:.9em;color:#444}
.big{font-size:1.6em;font-weight:bold}
table{border-collapse:collapse;font-size:.9em}
td,th{border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}
td.n,th.n{text-align:right}
.counts td,.counts th{padding:2px 5px}
.text{max-width:28em;overflow-wrap:anywhere;white-space:pre-wrap}
.muted{color:#666}
"""


def _time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _minute_name(minute: int) -> str:
    return datetime.fromtimestamp(minute * 60, UTC).strftime("%H:%M")


def _gateway_card(gateway: str, summary: GatewaySummary, last_minute: int) -> str:
    color = GATEWAY_COLORS[gateway]
    name = GATEWAY_NAMES[gateway]
    normalized = summary.by_normalized
    finished = sum(normalized[status] for status in FINISHED)
    rate = normalized["delivered"] / finished if finished else None
    funnel = charts.funnel(
        f"{name}: accepted, handed on to the network, delivered",
        [
            ("accepted", summary.total),
            ("handed on", sum(normalized[status] for status in HANDED_ON)),
            ("delivered", normalized["delivered"]),
        ],
        color,
    )
    breakdown = charts.stacked_bar(
        f"{name}: messages by status",
        [(status, normalized[status], COLORS[status]) for status in NORMALIZED_ORDER],
    )
    minutes = list(range(last_minute - MINUTES + 1, last_minute + 1))
    names = [_minute_name(minute) for minute in minutes]
    per_minute = charts.columns(
        f"{name}: messages accepted per minute", [summary.per_minute[m] for m in minutes], names, color
    )
    rates: list[float | None] = []
    for minute in minutes:
        done = summary.finished_per_minute.get(minute, Counter())
        ended = sum(done[status] for status in FINISHED)
        rates.append(done["delivered"] / ended if ended else None)
    rate_chart = charts.rate_line(
        f"{name}: delivery rate by minute accepted", rates, names, COLORS["delivered"]
    )
    cells = "".join(
        f'<tr><td>{status}</td><td class="n" data-gateway="{gateway}" data-status="{status}">'
        f"{normalized[status]:,}</td></tr>"
        for status in NORMALIZED_ORDER
        if normalized[status] or status in ("queued", "sent", "delivered", "undelivered", "failed")
    )
    raw = ", ".join(f"{escape(key)}: {count:,}" for key, count in sorted(summary.by_status.items())) or "none"
    rate_text = "no message has finished yet" if rate is None else f"{rate:.1%} of {finished:,} finished"
    return f"""<section class="card" id="{gateway}">
<h3 style="color:{color}">{name}</h3>
<div><span class="big" data-gateway="{gateway}" data-total>{summary.total:,}</span> messages,
<span data-gateway="{gateway}" data-requests>{summary.requests:,}</span> requests since start,
<span data-gateway="{gateway}" data-replies>{summary.replies:,}</span> replies received</div>
<div>delivery rate: <b data-gateway="{gateway}" data-rate>{rate_text}</b></div>
<h4>Funnel</h4>{funnel}
<h4>By status</h4>{breakdown}
<table class="counts">{cells}</table>
<p class="muted">raw statuses: {raw}</p>
<h4>Accepted per minute</h4>{per_minute}
<h4>Delivery rate by minute accepted</h4>{rate_chart}
</section>"""


def _message_rows(state: SandboxState, messages: list[Message], now: float) -> Iterator[str]:
    for message in messages:
        raw = state.status(message, now)
        normalized = state.normalized(message, raw, now)
        body = message.body if len(message.body) <= 160 else message.body[:159] + "…"
        yield (
            f"<tr><td>{_time(message.created_at)}</td><td>{GATEWAY_NAMES[message.gateway]}</td>"
            f"<td><code>{escape(str(message.id))}</code></td><td>{escape(message.recipient)}</td>"
            f'<td class="text" title="{escape(message.body)}">{escape(body)}</td>'
            f'<td style="color:{COLORS.get(normalized, "#222")}">{escape(normalized)}</td>'
            f'<td>{escape(str(raw))}</td><td class="n">{message.segments}</td></tr>'
        )


def render_page(
    state: SandboxState, injector: FaultInjector, now: float, summaries: dict[str, GatewaySummary]
) -> str:
    """The whole page as HTML (pure: reads ``state`` and ``injector``, changes nothing)."""
    newest = [minute for summary in summaries.values() for minute in summary.per_minute]
    last_minute = max(newest) if newest else int(now // 60)
    cards = "".join(_gateway_card(gateway, summaries[gateway], last_minute) for gateway in GATEWAYS)
    latest = latest_messages(state)
    rows = "".join(_message_rows(state, latest, now))
    if not rows:
        rows = '<tr><td colspan="8" class="muted">No message yet.</td></tr>'
    config = injector.config
    sentences = "".join(f"<li>{escape(sentence)}</li>" for sentence in fault_sentences(config))
    injected = ", ".join(f"{escape(kind)}: {injector.counts[kind]:,}" for kind in FAULT_KINDS)
    balance = ", ".join(f"{GATEWAY_NAMES[gw]} {amount:,.2f}" for gw, amount in state.balance.items())
    clock = state.clock
    total = sum(summary.total for summary in summaries.values())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<title>SMS sandbox gateway</title><style>{STYLE}</style></head><body>
<h1>SMS sandbox gateway</h1>
<p>Sandbox clock <b>{escape(iso_utc(now))}</b> ({"frozen, " if clock.frozen else ""}offset
{clock.offset:g} s); delivery takes {state.config.delivery_seconds:g} s; {total:,} messages stored.
Refreshes every 5 s. <a href="/docs">API reference</a> (works offline) ·
<a href="/openapi.json">OpenAPI</a> · JSON: <a href="/_sandbox/stats">stats</a>,
<a href="/_sandbox/messages">every message</a>, <a href="/_sandbox/contacts">contacts</a>.</p>
<div class="gateways">{cards}</div>
<p class="muted">The per-minute charts show the {MINUTES} minutes up to the newest message. "Handed on":
sent, delivered or undelivered. Delivery rate: delivered out of delivered, undelivered and failed.
Requests are counted since this server started; messages are kept in the state file, if any.</p>
<h2>Latest messages</h2>
<p class="muted">The {LATEST} newest of all gateways, newest first; statuses as of the sandbox clock.</p>
<table><tr><th>accepted (UTC)</th><th>gateway</th><th>id</th><th>to</th><th>text</th><th>status</th>
<th>raw</th><th class="n">segments</th></tr>{rows}</table>
<h2>Faults</h2><ul>{sentences}</ul>
<p>Injected since the last reset: {injected}. The admin API (<code>/_sandbox/...</code>), this page and
<code>/docs</code> are never faulted.</p>
<p class="muted">Balance: {escape(balance)}. Timezones: {escape(", ".join(f"{GATEWAY_NAMES[gw]} {tz}" for gw, tz in state.timezones.items()))}.</p>
</body></html>
"""


def create_page_router(state: SandboxState, injector: FaultInjector) -> APIRouter:
    """``GET /``: the status page, bound to ``state`` and ``injector``."""
    router = APIRouter(include_in_schema=False)
    tally = Tally(state)

    @router.get("/")
    async def page() -> HTMLResponse:
        now, summaries = await tally.summarize()
        return HTMLResponse(render_page(state, injector, now, summaries))

    return router
