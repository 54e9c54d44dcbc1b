"""One campaign end to end: a PostgreSQL audience → send → the deferrable wait → the delivery report.

``python -m benchmarks --only campaign`` (``--campaign-recipients``, default 1,000,000):

1. **audience** (set-up, not part of the campaign's time): table ``campaign_audience`` in a fresh
   PostgreSQL database, filled with ``COPY``; per block of 1,000 rows 10 repeat an earlier row in
   another format (duplicates), 1 is unreadable (rejected), 5 are unsubscribed and 5 more are on
   the suppression table (suppressed).
2. **send**: ``SmsBulkSendOperator`` with the SQL source and the ledger on the same database, to
   the sandbox (a separate process).
3. **wait**: the sandbox clock is moved past delivery, then ``SmsDeliveryTrigger.run()`` (what the
   triggerer runs for the deferred ``SmsDeliverySensor``) until its event, which the sensor's
   ``execute_complete`` accepts.
4. **report**: ``SmsDeliveryReportOperator`` for the campaign into a report table on the database.
5. **check** (not timed in the campaign): every input row is accounted for, the ledger, the
   sandbox, the trigger's counts and the report agree, the report has one row per accepted message
   and each its recipient's outcome (the sandbox: numbers ending in 13 undelivered, 66 failed).

Per phase: wall time, CPU of this process (all threads), of the sandbox process, and of the
PostgreSQL backends serving the database (sampled from ``pg_stat_activity`` every 0.2 s and read
from ``/proc``, so a connection shorter than that may be missed).
"""

from __future__ import annotations

import asyncio
import io
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from benchmarks.common import (
    CAMPAIGN_TEMPLATE,
    SENDER,
    BackendCpu,
    NumberPool,
    Table,
    connection_config,
    log,
    own_peak_rss_mb,
    pg_connect,
    process_cpu_seconds,
    sql_connection,
    task_context,
    verdict,
)

GOAL_SECONDS, LIMIT_SECONDS = 60.0, 120.0
AUDIENCE = "campaign_audience"
SUPPRESSION = "campaign_suppression"
REPORT = "campaign_report"
QUERY = f"SELECT phone, first_name, city, unsubscribed FROM {AUDIENCE} ORDER BY id"
NAMES = ("Ana", "Ben", "Chloé", "Dmitri", "Eve")


def kind_of(i: int) -> str:
    """What row ``i`` of the audience is (decided by its position, so nothing is kept per row)."""
    r = i % 1000
    if r >= 990:
        return "duplicate"  # of row i - 10, a plain row of the same block, in another format
    if r == 500:
        return "invalid"
    if 100 <= r < 105:
        return "unsubscribed"
    if 200 <= r < 205:
        return "suppression list"
    return "plain"


def expected(rows: int) -> Counter:
    blocks, rest = divmod(rows, 1000)
    counts = Counter({k: n * blocks for k, n in Counter(map(kind_of, range(1000))).items()})
    counts.update(kind_of(i) for i in range(rest))
    return counts


def fill_audience(conn_id: str, block: range) -> None:
    """The audience and suppression tables, written with COPY in slices of 100k rows."""
    db = pg_connect(conn_id)
    first = block.start
    with db, db.cursor() as cur:
        cur.execute(
            f"CREATE TABLE {AUDIENCE} (id BIGINT PRIMARY KEY, phone TEXT, first_name TEXT, "
            "city TEXT, unsubscribed BOOLEAN)"
        )
        cur.execute(f"CREATE TABLE {SUPPRESSION} (phone TEXT)")
        for start in range(0, len(block), 100_000):
            audience, suppressed = io.StringIO(), io.StringIO()
            for i in range(start, min(start + 100_000, len(block))):
                kind = kind_of(i)
                if kind == "duplicate":
                    phone = f"+316{first + i - 10}" if i % 2 else f"0031 6 {first + i - 10}"
                elif kind == "invalid":
                    phone = "not a number"
                else:
                    phone = f"+316{first + i}"
                if kind == "suppression list":
                    suppressed.write(f"+316{first + i}\n")
                unsubscribed = "t" if kind == "unsubscribed" else "f"
                audience.write(f"{i}\t{phone}\t{NAMES[i % 5]}\tBerlin\t{unsubscribed}\n")
            audience.seek(0)
            suppressed.seek(0)
            cur.copy_expert(f"COPY {AUDIENCE} FROM STDIN", audience)
            cur.copy_expert(f"COPY {SUPPRESSION} FROM STDIN", suppressed)
        cur.execute(f"ANALYZE {AUDIENCE}")
    db.close()


# ------------------------------------------------------------------------------------------------ measuring
@dataclass
class Phase:
    name: str
    seconds: float = 0.0
    cpu: float = 0.0
    sandbox_cpu: float = 0.0
    postgres_cpu: float = 0.0
    peak_rss_mb: float = 0.0
    rows: str = ""
    notes: list[str] = field(default_factory=list)


@contextmanager
def phase(phases: list[Phase], name: str, sandbox_pid: int, backends: BackendCpu) -> Iterator[Phase]:
    current = Phase(name)
    log(f"campaign: {name}")
    started, cpu = time.perf_counter(), time.process_time()
    sandbox, pg = process_cpu_seconds(sandbox_pid) or 0.0, backends.total()
    _reset_peak_rss()
    try:
        yield current
    finally:
        time.sleep(0.3)  # one more sample of the backends that served the phase
        current.seconds = time.perf_counter() - started - 0.3
        current.cpu = time.process_time() - cpu
        current.sandbox_cpu = (process_cpu_seconds(sandbox_pid) or 0.0) - sandbox
        current.postgres_cpu = backends.total() - pg
        current.peak_rss_mb = own_peak_rss_mb()
        phases.append(current)


def _reset_peak_rss() -> None:
    """Start this process's VmHWM afresh (Linux ≥ 4.0), so each phase gets its own peak RSS."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass  # then the peak is the process's so far


# ------------------------------------------------------------------------------------------------ the run
def run(sandbox, conn_ids: dict[str, str], gateway: str, recipients: int, pool: NumberPool, workdir):
    """Run the campaign once, check it, and return its table and numbers."""
    import pendulum

    from airflow_provider_sms.operators.report import SmsDeliveryReportOperator
    from airflow_provider_sms.operators.send import SmsBulkSendOperator
    from airflow_provider_sms.sensors.delivery import SmsDeliverySensor
    from airflow_provider_sms.triggers.delivery import SmsDeliveryTrigger
    from benchmarks.send import split_timers

    sms_conn_id = conn_ids[gateway]
    key = f"campaign-{recipients}"
    context = task_context(run_id=key)
    pid = sandbox.process.pid
    phases: list[Phase] = []
    want = expected(recipients)
    with sql_connection("postgres", workdir, "campaign") as conn_id:
        database = connection_config(conn_id)["schema"]
        sandbox.reset()
        with BackendCpu(conn_id, database) as backends:
            with phase(phases, "audience (COPY)", pid, backends) as p:
                fill_audience(conn_id, pool.take(recipients))
                p.rows = f"{recipients:,} audience rows, {want['suppression list']:,} suppression rows"

            with phase(phases, "send", pid, backends) as p:
                send = SmsBulkSendOperator(
                    task_id="send",
                    sms_conn_id=sms_conn_id,
                    message=CAMPAIGN_TEMPLATE,
                    sql=QUERY,
                    sql_conn_id=conn_id,
                    suppression_sql=f"SELECT phone FROM {SUPPRESSION}",
                    sender=SENDER,
                    ledger_conn_id=conn_id,
                    campaign_key=key,
                )
                with split_timers(send) as spent:
                    summary = send.execute(context)
                p.rows = (
                    f"{summary['input']:,} read: {summary['accepted']:,} accepted, "
                    f"{summary['suppressed']:,} suppressed, {summary['rejected']:,} rejected, "
                    f"{summary['duplicates']:,} duplicates"
                )
                p.notes.append(
                    f"in send_batch {spent['gateway']:.1f} s, in ledger writes {spent['ledger']:.1f} s "
                    "(wall, overlapping)"
                )

            with phase(phases, "wait (trigger)", pid, backends) as p:
                sandbox.advance(2)  # the sandbox's delivery_seconds: every message is now final
                sensor = SmsDeliverySensor(
                    task_id="wait",
                    sms_conn_id=sms_conn_id,
                    campaign_key=key,
                    ledger_conn_id=conn_id,
                    poke_interval=1,
                    max_poll_interval=5,
                    timeout=3600,
                )
                trigger = SmsDeliveryTrigger(
                    sms_conn_id=sms_conn_id,
                    campaign_key=key,
                    ledger_conn_id=conn_id,
                    ledger_table=sensor.ledger_table,
                    poll_interval=sensor.poke_interval,
                    max_poll_interval=sensor.max_poll_interval,
                    timeout_at=pendulum.now("UTC").add(minutes=30),  # never hangs the benchmark
                )
                event = asyncio.run(_first_event(trigger))
                waited = sensor.execute_complete(context, event)
                p.rows = (
                    f"{waited['total']:,} watched, {waited['final']:,} final, {waited['failed']:,} failed"
                )

            with phase(phases, "report", pid, backends) as p:
                report = SmsDeliveryReportOperator(
                    task_id="report",
                    sms_conn_id=sms_conn_id,
                    report_conn_id=conn_id,
                    report_table=REPORT,
                    campaign_key=key,
                )
                reported = report.execute(context)
                p.rows = f"{reported['fetched']:,} statuses read, {reported['changed']:,} report rows written"

            with phase(phases, "check", pid, backends) as p:
                checks = check(conn_id, key, want, summary, waited, reported, sandbox, gateway)
                p.rows = f"{len(checks)} checks passed"
    return _table(phases, recipients, gateway, checks), {
        "recipients": recipients,
        "phases": {
            ph.name: {
                "seconds": round(ph.seconds, 2),
                "cpu": round(ph.cpu, 2),
                "sandbox_cpu": round(ph.sandbox_cpu, 2),
                "postgres_cpu": round(ph.postgres_cpu, 2),
                "peak_rss_mb": round(ph.peak_rss_mb, 1),
                "rows": ph.rows,
            }
            for ph in phases
        },
        "campaign_seconds": round(_campaign_seconds(phases), 2),
        "summary": summary,
        "wait": {k: waited[k] for k in ("status", "total", "final", "failed", "counts")},
        "report": reported,
    }


async def _first_event(trigger) -> dict[str, Any]:
    """Run the trigger as the triggerer would, until its (only) event."""
    async for event in trigger.run():
        return event.payload
    raise RuntimeError("the delivery trigger ended without an event")


def check(
    conn_id: str,
    key: str,
    want: Counter,
    summary: dict[str, Any],
    waited: dict[str, Any],
    reported: dict[str, Any],
    sandbox,
    gateway: str,
) -> list[str]:
    """Every row accounted for, at every phase; raises AssertionError on the first that is not."""
    done: list[str] = []

    def ok(condition: bool, what: str) -> None:
        if not condition:
            raise AssertionError(f"campaign benchmark: {what}")
        done.append(what)

    s = summary
    rows = sum(want.values())
    ok(s["input"] == rows, f"input {s['input']} == audience rows {rows}")
    ok(
        s["accepted"] + s["suppressed"] + s["rejected"] + s["duplicates"] == s["input"]
        and s["ambiguous"] == 0,
        f"accepted {s['accepted']} + suppressed {s['suppressed']} + rejected {s['rejected']} "
        f"+ duplicates {s['duplicates']} == input {s['input']}, none ambiguous",
    )
    ok(s["duplicates"] == want["duplicate"], f"duplicates {s['duplicates']} == {want['duplicate']}")
    ok(s["rejected"] == want["invalid"], f"rejected {s['rejected']} == unreadable rows {want['invalid']}")
    suppressed = {"unsubscribed": want["unsubscribed"], "suppression list": want["suppression list"]}
    ok(
        s["suppressed_reasons"] == suppressed,
        f"suppressed by reason {s['suppressed_reasons']} == {suppressed}",
    )
    ok(s["accepted"] == want["plain"], f"accepted {s['accepted']} == plain rows {want['plain']}")

    db = pg_connect(conn_id)
    try:
        with db.cursor() as cur:
            cur.execute(
                "SELECT state, COUNT(*) FROM sms_messages WHERE campaign_key = %s GROUP BY state", [key]
            )
            ledger = dict(cur.fetchall())
            cur.execute(
                f"SELECT status, COUNT(*), COUNT(DISTINCT message_id), "
                f"SUM(CASE WHEN r.recipient LIKE '%%13' THEN 1 ELSE 0 END), "
                f"SUM(CASE WHEN r.recipient LIKE '%%66' THEN 1 ELSE 0 END) "
                f"FROM {REPORT} r WHERE campaign_key = %s GROUP BY status",
                [key],
            )
            report = {status: (n, distinct, n13, n66) for status, n, distinct, n13, n66 in cur.fetchall()}
            cur.execute(
                f"SELECT COUNT(*) FROM sms_messages m LEFT JOIN {REPORT} r ON r.message_id = m.message_id "
                "AND r.gateway = m.gateway WHERE m.campaign_key = %s AND m.state = 'accepted' "
                "AND r.message_id IS NULL",
                [key],
            )
            unreported = cur.fetchone()[0]
    finally:
        db.close()
    states = {"accepted": s["accepted"], "suppressed": s["suppressed"], "rejected": s["rejected"]}
    ok(ledger == states, f"ledger rows by state {ledger} == {states}")
    stats = sandbox.stats()["messages"]["by_gateway"][gateway]
    ok(
        stats["total"] == s["accepted"] and stats["duplicates"] == 0,
        f"sandbox holds {stats['total']} messages, {stats['duplicates']} duplicates",
    )
    ok(
        waited["status"] == "success" and waited["total"] == waited["final"] == s["accepted"],
        f"trigger: {waited['final']} of {waited['total']} final == accepted",
    )
    rows_in_report = sum(n for n, _, _, _ in report.values())
    ok(
        rows_in_report == s["accepted"] == sum(d for _, d, _, _ in report.values()) and unreported == 0,
        f"report: {rows_in_report} rows, one per accepted message ({unreported} accepted without one)",
    )
    ok(
        reported["counts"] == waited["counts"] == {st: n for st, (n, _, _, _) in report.items()},
        f"report counts {reported['counts']} == trigger counts {waited['counts']}",
    )
    undelivered, failed = report.get("undelivered", (0, 0, 0, 0)), report.get("failed", (0, 0, 0, 0))
    delivered = report.get("delivered", (0, 0, 0, 0))
    ok(
        undelivered[0] == undelivered[2]
        and failed[0] == failed[3]
        and delivered[2] == delivered[3] == 0
        and set(report) <= {"delivered", "undelivered", "failed"},
        "each report row has its recipient's outcome (…13 undelivered, …66 failed, the rest delivered)",
    )
    return done


def _campaign_seconds(phases: list[Phase]) -> float:
    return sum(p.seconds for p in phases if p.name in ("send", "wait (trigger)", "report"))


def _table(phases: list[Phase], recipients: int, gateway: str, checks: list[str]) -> Table:
    table = Table(
        f"One campaign end to end, {recipients:,} recipients ({gateway}; audience, ledger and report "
        "on PostgreSQL)",
        ["phase", "wall s", "benchmark CPU s", "sandbox CPU s", "PostgreSQL CPU s", "peak RSS MB", "rows"],
    )
    for p in phases:
        table.add(p.name, p.seconds, p.cpu, p.sandbox_cpu, p.postgres_cpu, p.peak_rss_mb, p.rows)
    campaign = [p for p in phases if p.name in ("send", "wait (trigger)", "report")]
    seconds = _campaign_seconds(phases)
    table.add(
        "campaign (send + wait + report)",
        seconds,
        sum(p.cpu for p in campaign),
        sum(p.sandbox_cpu for p in campaign),
        sum(p.postgres_cpu for p in campaign),
        max(p.peak_rss_mb for p in campaign),
        f"{recipients / seconds:,.0f} recipients/s",
    )
    table.notes += [note for p in phases for note in (f"{p.name}: {n}" for n in p.notes)]
    table.notes.append(
        f"campaign wall {seconds:.1f} s: goal ≤ {GOAL_SECONDS:.0f} s {verdict(seconds <= GOAL_SECONDS)}, "
        f"limit ≤ {LIMIT_SECONDS:.0f} s {verdict(seconds <= LIMIT_SECONDS)}"
    )
    table.notes.append(
        "benchmark CPU: this process, all threads (the operators, the trigger's event loop); "
        "PostgreSQL CPU: its backends on the campaign's database, sampled every 0.2 s"
    )
    table.notes.append(f"checks passed ({len(checks)}): " + "; ".join(checks))
    table.notes.append("peak RSS: the benchmark process's VmHWM, reset at the start of each phase")
    return table
