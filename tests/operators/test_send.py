"""SmsBulkSendOperator end to end: the sandbox gateway over HTTP, the ledger on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Callable
from types import SimpleNamespace

import pandas as pd
import pendulum
import pytest

from airflow_provider_sms.campaign.templates import MessageTemplateError
from airflow_provider_sms.exceptions import SmsGatewayError, SmsValidationError
from airflow_provider_sms.operators.send import SmsBulkSendOperator
from airflow_provider_sms.storage.ledger import ACCEPTED, REJECTED, MessageLedger
from airflow_provider_sms.storage.table import get_sql_hook

GATEWAYS = ["smstools", "smsgateway24", "textboost"]
NAMES = ["Ana", "Ben", "Chloé", "Dmitri", "Eve"]


def phone(i: int) -> str:
    return f"+49151{10_000_000 + i:08d}"


def audience(size: int = 1_000) -> pd.DataFrame:
    """``size`` rows: 3 invalid phones, 2 duplicates, 5 unsubscribed, the rest plain."""
    rows = [
        {"phone": phone(i), "first_name": NAMES[i % len(NAMES)], "unsubscribed": 0, "city": "Berlin"}
        for i in range(size - 5)
    ]
    rows[10]["phone"] = "12"  # too short
    rows[20]["phone"] = "not a number"
    rows[30]["phone"] = ""
    for i in (40, 41, 42, 43, 44):
        rows[i]["unsubscribed"] = 1
    rows.append({**rows[50]})  # duplicate (same number, same format)
    rows.append({**rows[51], "phone": phone(51).replace("+49", "0049 ")})  # duplicate, other format
    rows += [
        {"phone": phone(size + i), "first_name": "Zoe", "unsubscribed": None, "city": "Hamburg"}
        for i in range(3)
    ]
    assert len(rows) == size
    return pd.DataFrame(rows)


def context(run_id: str = "manual__1") -> dict:
    return {
        "ti": SimpleNamespace(dag_id="campaigns", task_id="send", try_number=1, map_index=-1),
        "logical_date": pendulum.datetime(2026, 11, 23, 9),
        "run_id": run_id,
        "ds": "2026-11-23",
        "params": {},
    }


def make_operator(conn_id: str, ledger_conn_id: str, **kwargs) -> SmsBulkSendOperator:
    kwargs.setdefault("audience", audience())
    return SmsBulkSendOperator(
        task_id="send",
        sms_conn_id=conn_id,
        message=kwargs.pop("message", "Hi {{ first_name }}, our {{ city }} store opens at 9."),
        ledger_conn_id=ledger_conn_id,
        campaign_key=kwargs.pop("campaign_key", "spring-sale"),
        **kwargs,
    )


def sent_messages(sandbox, gateway: str) -> list[dict]:
    return sandbox.messages(gateway=gateway)


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_campaign_counts_and_each_recipient_messaged_once(gateway, sandbox, sms_conn_env, sql_conn_id):
    summary = make_operator(sms_conn_env[gateway], sql_conn_id).execute(context())

    assert summary == {
        "campaign_key": "spring-sale",
        "ledger_table": "sms_messages",
        "input": 1_000,
        "accepted": 990,
        "rejected": 3,
        "suppressed": 5,
        "duplicates": 2,
        "ambiguous": 0,
        "segments": 990,
        "suppressed_reasons": {"unsubscribed": 5},
    }
    received = sent_messages(sandbox, gateway)
    assert len(received) == 990
    assert all(m["count"] == 1 for m in received)
    ledger = MessageLedger(sql_conn_id)
    accepted = {e.recipient for e in ledger.in_state("spring-sale", [ACCEPTED])}
    assert {m["recipient"] for m in received} == accepted
    assert phone(40) not in accepted  # unsubscribed
    bodies = {m["recipient"]: m["body"] for m in received}
    assert bodies[phone(0)] == "Hi Ana, our Berlin store opens at 9."
    # every accepted row carries the gateway's id; rejects carry their reason
    assert len(set(ledger.message_ids("spring-sale"))) == 990
    reasons = sorted(e.error for e in ledger.in_state("spring-sale", ["rejected"]))
    assert [r.split(" (")[0] for r in reasons] == ["contains letters", "empty", "unknown country code"]


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_rerun_of_the_same_campaign_sends_nothing_new(gateway, sandbox, sms_conn_env, sqlite_conn_id):
    first = make_operator(sms_conn_env[gateway], sqlite_conn_id).execute(context())
    requests_after_first = sandbox.request_count(gateway=gateway)
    second = make_operator(sms_conn_env[gateway], sqlite_conn_id).execute(context())

    assert second == first
    assert len(sent_messages(sandbox, gateway)) == 990
    sends = sum(
        sandbox.request_count(gateway=gateway, path_contains=p)
        for p in ("message/send", "addalotofsms", "addsms", "sms/send")
    )
    assert sends > 0
    assert sandbox.request_count(gateway=gateway) == requests_after_first  # not one request more


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_commit_then_drop_then_retry_leaves_exactly_one_message_each(
    gateway, sandbox, sms_conn_env, sqlite_conn_id
):
    people = audience(300)
    sandbox.set_faults(commit_then_drop=0.5, seed=7)
    with contextlib.suppress(SmsGatewayError):  # a failed try is allowed: the retry below must repair it
        make_operator(sms_conn_env[gateway], sqlite_conn_id, audience=people, batch_size=25).execute(
            context()
        )
    sandbox.clear_faults()
    summary = make_operator(sms_conn_env[gateway], sqlite_conn_id, audience=people).execute(context())

    received = sent_messages(sandbox, gateway)
    assert summary["accepted"] == 290
    assert len(received) == 290
    assert Counter(m["count"] for m in received) == {1: 290}
    assert sandbox.stats()["faults"]["injected"]["commit_then_drop"] > 0


@pytest.mark.parametrize("in_flight", [1, 4])
@pytest.mark.parametrize("gateway", GATEWAYS)
def test_crash_mid_batch_is_repaired_without_duplicates(
    gateway, in_flight, sandbox, sms_conn_env, sqlite_conn_id
):
    """The worker died after a request left: 20 of its 30 messages had arrived, none was recorded.
    With requests in parallel, each of those that left died the same way; one that had not left
    when the first died never leaves."""
    people = audience(100)
    op = make_operator(
        sms_conn_env[gateway], sqlite_conn_id, audience=people, batch_size=30, max_in_flight=in_flight
    )
    real_send, left = op.hook.send_batch, []

    def dies_mid_batch(messages):
        left.append(len(messages))
        real_send(messages[:20])
        raise KeyboardInterrupt("worker killed")

    op.hook.send_batch = dies_mid_batch
    with pytest.raises(KeyboardInterrupt):
        op.execute(context())
    counts = MessageLedger(sqlite_conn_id).counts("spring-sale")
    if in_flight == 1:
        assert counts["sending"] == 30 and left == [30]
    else:  # those that left stay sending; those stopped before leaving are pending again
        assert counts["sending"] == 30 * len(left) and 1 <= len(left) <= 3
        assert counts.get("pending", 0) == 90 - 30 * len(left)
    assert len(sent_messages(sandbox, gateway)) == 20 * len(left)

    summary = make_operator(sms_conn_env[gateway], sqlite_conn_id, audience=people).execute(context())

    assert summary["accepted"] == 90
    received = sent_messages(sandbox, gateway)
    assert len(received) == 90
    assert all(m["count"] == 1 for m in received)


@pytest.mark.parametrize("in_flight", [1, 4])
@pytest.mark.parametrize("gateway", ["smstools", "textboost"])
def test_a_request_leaves_only_after_its_rows_are_committed_as_sending(
    gateway, in_flight, sandbox, sms_conn_env, sql_conn_id
):
    """With requests in flight while the ledger is written, the rule that makes a send exactly
    once still holds: every row of a request is ``sending`` in the ledger (as another connection
    sees it, i.e. committed) before the request leaves. Hook calls come from at most
    ``max_in_flight`` gateway threads, never from the main thread."""
    op = make_operator(sms_conn_env[gateway], sql_conn_id, batch_size=50, max_in_flight=in_flight)
    real_send = op.hook.send_batch
    threads, states_seen, local, lock = set(), Counter(), threading.local(), threading.Lock()

    def checked_send(messages):
        if not hasattr(local, "ledger"):  # its own connection, opened in the thread that uses it
            local.ledger = MessageLedger(sql_conn_id)
        rows = local.ledger.load("spring-sale", [m.to for m in messages])
        with lock:
            threads.add(threading.get_ident())
            states_seen.update(rows[m.to].state for m in messages)
        return real_send(messages)

    op.hook.send_batch = checked_send
    summary = op.execute(context())

    assert summary["accepted"] == 990
    assert states_seen == {"sending": 990}
    assert 1 <= len(threads) <= in_flight and threading.get_ident() not in threads
    assert len(sent_messages(sandbox, gateway)) == 990


def test_a_failure_that_ends_the_run_lets_no_further_request_leave(sandbox, sms_conn_env, sqlite_conn_id):
    """The next batch is already queued when a request fails for good (here: a refused credential):
    it must not leave, and its rows go back to pending for the retry, not to sending."""
    op = make_operator(sms_conn_env["textboost"], sqlite_conn_id, batch_size=100, max_in_flight=1)
    real_send, calls = op.hook.send_batch, []

    def fails_on_the_third(messages):
        calls.append(len(messages))
        if len(calls) == 3:
            raise SmsGatewayError("401 Unauthenticated", gateway="textboost")
        return real_send(messages)

    op.hook.send_batch = fails_on_the_third
    with pytest.raises(SmsGatewayError):
        op.execute(context())
    assert calls == [100, 100, 100]  # the fourth batch was marked, queued and stopped
    counts = MessageLedger(sqlite_conn_id).counts("spring-sale")
    assert counts["accepted"] == 200 and counts.get("sending", 0) == 0
    assert len(sent_messages(sandbox, "textboost")) == 200

    summary = make_operator(sms_conn_env["textboost"], sqlite_conn_id).execute(context())
    assert summary["accepted"] == 990
    assert all(m["count"] == 1 for m in sent_messages(sandbox, "textboost"))


def test_template_with_an_unknown_column_fails_before_sending(sandbox, sms_conn_env, sqlite_conn_id):
    op = make_operator(sms_conn_env["smstools"], sqlite_conn_id, message="Hi {{ frist_name }}")
    with pytest.raises(MessageTemplateError, match="frist_name"):
        op.execute(context())
    assert sandbox.request_count() == 0


def test_a_row_the_template_fails_on_is_named_by_its_position_and_column(
    sandbox, sms_conn_env, sqlite_conn_id
):
    people = pd.DataFrame({"phone": [phone(i) for i in range(5)], "credit": [10, 20, 5, 0, 50]})
    op = make_operator(
        sms_conn_env["smstools"],
        sqlite_conn_id,
        audience=people,
        message="Hi!\nYou get {{ 100 // credit }} points.",
    )
    with pytest.raises(
        MessageTemplateError, match=r"on input row 3 \(template line 2\).*on that line: credit \(int\)"
    ) as err:
        op.execute(context())
    assert phone(3) not in str(err.value) and phone(3)[-8:] not in str(err.value)


def test_template_syntax_error_fails_before_sending(sandbox, sms_conn_env, sqlite_conn_id):
    op = make_operator(sms_conn_env["smstools"], sqlite_conn_id, message="Hi {{ first_name ")
    with pytest.raises(MessageTemplateError, match="syntax error"):
        op.execute(context())
    assert sandbox.request_count() == 0


def test_missing_phone_column_is_a_clear_error(sandbox, sms_conn_env, sqlite_conn_id):
    op = make_operator(sms_conn_env["smstools"], sqlite_conn_id, phone_column="mobile")
    with pytest.raises(ValueError, match="'mobile'"):
        op.execute(context())
    assert sandbox.request_count() == 0


def test_dry_run_sends_and_records_nothing(sandbox, sms_conn_env, sqlite_conn_id):
    people = audience()
    people.loc[0, "first_name"] = "Žofia with a long name " + "x" * 200
    summary = make_operator(
        sms_conn_env["textboost"], sqlite_conn_id, audience=people, dry_run=True, cost_per_segment=0.05
    ).execute(context())

    assert sandbox.request_count() == 0
    assert summary["dry_run"] is True
    assert (summary["input"], summary["would_send"], summary["rejected"]) == (1_000, 990, 3)
    assert (summary["suppressed"], summary["duplicates"]) == (5, 2)
    assert summary["segments"] == 989 + 4  # the long UCS-2 body needs 4 segments
    assert summary["estimated_cost"] == pytest.approx(993 * 0.05)
    assert summary["sample"][0]["to"] == phone(0)
    assert summary["sample"][0]["body"].startswith("Hi Žofia")
    ledger_tables = get_sql_hook(sqlite_conn_id).get_records(
        "SELECT name FROM sqlite_master WHERE name = 'sms_messages'"
    )
    assert ledger_tables == []


def test_audience_from_a_postgres_table_read_in_chunks(sandbox, sms_conn_env, postgres_conn_id):
    people = audience(500)
    pg = get_sql_hook(postgres_conn_id)
    pg.run(
        "CREATE TABLE customers (id SERIAL PRIMARY KEY, phone TEXT, first_name TEXT, unsubscribed INT, city TEXT)"
    )
    pg.insert_rows(
        "customers",
        [
            tuple(None if pd.isna(v) else v for v in r)
            for r in people[["phone", "first_name", "unsubscribed", "city"]].itertuples(index=False)
        ],
        target_fields=["phone", "first_name", "unsubscribed", "city"],
        executemany=True,
    )
    op = make_operator(
        sms_conn_env["smsgateway24"],
        postgres_conn_id,
        audience=None,
        sql="SELECT phone, first_name, unsubscribed, city FROM customers ORDER BY id",
        sql_conn_id=postgres_conn_id,
        chunk_size=64,
    )
    summary = op.execute(context())

    assert (summary["input"], summary["accepted"], summary["rejected"]) == (500, 490, 3)
    assert (summary["suppressed"], summary["duplicates"]) == (5, 2)
    assert len(sent_messages(sandbox, "smsgateway24")) == 490


def test_suppression_list_and_sql(sandbox, sms_conn_env, sqlite_conn_id):
    people = audience(100)
    warehouse = get_sql_hook(sqlite_conn_id)
    warehouse.run("CREATE TABLE opt_outs (msisdn TEXT)")
    warehouse.insert_rows("opt_outs", [(phone(50).lstrip("+"),), (phone(51),)], target_fields=["msisdn"])
    summary = make_operator(
        sms_conn_env["smstools"],
        sqlite_conn_id,
        audience=people,
        suppression_list=["0151 10000060"],
        suppression_sql="SELECT msisdn FROM opt_outs",
        suppression_conn_id=sqlite_conn_id,
        default_region="DE",
    ).execute(context())

    assert summary["suppressed"] == 5 + 3
    recipients = {m["recipient"] for m in sent_messages(sandbox, "smstools")}
    assert not recipients & {phone(50), phone(51), phone(60)}


def test_shards_split_the_audience_without_overlap(sandbox, sms_conn_env, sqlite_conn_id):
    people = audience(300)
    results = [
        make_operator(
            sms_conn_env["smstools"], sqlite_conn_id, audience=people, shard_index=i, shard_count=3
        ).execute(context())
        for i in range(3)
    ]
    assert sum(r["accepted"] for r in results) == 290
    assert sum(r["rejected"] for r in results) == 3
    assert sum(r["input"] for r in results) == 300
    assert all(r["accepted"] > 50 for r in results)  # each shard really did a share
    received = sent_messages(sandbox, "smstools")
    assert len(received) == 290
    assert all(m["count"] == 1 for m in received)


def test_mostly_rejected_campaign_fails_after_recording(sandbox, sms_conn_env, sqlite_conn_id):
    people = pd.DataFrame(
        [{"phone": f"bad-{i}", "first_name": "x"} for i in range(8)]
        + [{"phone": phone(1), "first_name": "y"}]
    )
    op = make_operator(
        sms_conn_env["smstools"], sqlite_conn_id, audience=people, message="Hi {{ first_name }}"
    )
    with pytest.raises(SmsValidationError, match="8 of 9 recipients were rejected"):
        op.execute(context())
    assert MessageLedger(sqlite_conn_id).counts("spring-sale") == {"rejected": 8, "accepted": 1}


def test_list_of_dicts_audience(sandbox, sms_conn_env, sqlite_conn_id):
    rows = [{"phone": phone(i), "first_name": "Ana", "city": "Rome"} for i in range(5)]
    summary = make_operator(sms_conn_env["textboost"], sqlite_conn_id, audience=rows).execute(context())
    assert summary["accepted"] == 5
    assert sandbox.request_count(gateway="textboost", path_contains="sms/send") == 1  # one body, one request


def test_openlineage_names_the_audience_tables_the_ledger_and_the_gateway(sms_conn_env, postgres_conn_id):
    pytest.importorskip("airflow.providers.openlineage", reason="the OpenLineage provider is not installed")
    op = make_operator(
        sms_conn_env["smstools"],
        postgres_conn_id,
        audience=None,
        sql="SELECT c.phone FROM crm.customers c LEFT JOIN crm.opt_outs o ON o.phone = c.phone",
        sql_conn_id=postgres_conn_id,
    )
    lineage = op.get_openlineage_facets_on_complete(None)
    inputs = {(d.namespace, d.name) for d in lineage.inputs}
    outputs = {(d.namespace, d.name) for d in lineage.outputs}
    namespace = "postgres://127.0.0.1:5432"
    database = get_sql_hook(postgres_conn_id).get_connection(postgres_conn_id).schema
    assert inputs == {(namespace, f"{database}.crm.customers"), (namespace, f"{database}.crm.opt_outs")}
    assert (namespace, f"{database}.public.sms_messages") in outputs
    assert any(ns.startswith("smstools://127.0.0.1:") for ns, _ in outputs)


# -- send windows ---------------------------------------------------------------------------------
# The operator reads the sandbox's clock and the sandbox's clock is moved to the next occurrence of
# a local time: both sides agree on the time, and no test depends on the date it runs on.


def sandbox_clock(sandbox) -> Callable[[], float]:
    """The sandbox's clock, in epoch seconds, for the operator's send window."""
    return lambda: pendulum.parse(sandbox.health()["now"]).timestamp()


def advance_to(sandbox, hh_mm: str, tz: str) -> pendulum.DateTime:
    """Move the sandbox's clock forward to the next ``hh_mm`` in ``tz``; returns that moment."""
    now = pendulum.from_timestamp(sandbox_clock(sandbox)(), tz)
    target = now.at(*map(int, hh_mm.split(":")))
    if target <= now:
        target = target.add(days=1)
    sandbox.advance((target - now).total_seconds())
    return target


def next_local(moment: pendulum.DateTime, hh_mm: str, tz: str) -> pendulum.DateTime:
    """The first ``hh_mm`` in ``tz`` after ``moment`` (no test here uses a time a DST change skips)."""
    local = moment.in_timezone(tz)
    target = local.at(*map(int, hh_mm.split(":")))
    return target if target > local else target.add(days=1)


def window_operator(sandbox, conn_id: str, ledger_conn_id: str, **kwargs) -> SmsBulkSendOperator:
    op = make_operator(conn_id, ledger_conn_id, **kwargs)
    op.window.clock = sandbox_clock(sandbox)
    return op


def effective(message: dict) -> pendulum.DateTime:
    """When the gateway delivers a message: its schedule time, or when it arrived."""
    return max(pendulum.parse(message["send_at"]), pendulum.parse(message["created_at"]))


def test_send_window_schedules_at_the_gateway(sandbox, sms_conn_env, sqlite_conn_id):
    late_evening = advance_to(sandbox, "22:30", "Europe/Berlin")
    rows = [{"phone": phone(i), "first_name": "Ana", "city": "Rome"} for i in range(10)]
    summary = window_operator(
        sandbox,
        sms_conn_env["smsgateway24"],
        sqlite_conn_id,
        audience=rows,
        send_window=("09:00", "20:00"),
        window_timezone="Europe/Berlin",
    ).execute(context())

    assert summary["accepted"] == 10
    received = sent_messages(sandbox, "smsgateway24")
    assert len(received) == 10
    assert {m["normalized_status"] for m in received} == {"scheduled"}
    opening = next_local(late_evening, "09:00", "Europe/Berlin")
    assert {pendulum.parse(m["send_at"]) for m in received} == {opening}
    sandbox.advance((opening - late_evening).total_seconds() + 60)
    assert "scheduled" not in {m["normalized_status"] for m in sent_messages(sandbox, "smsgateway24")}


def test_send_window_defer_frees_the_worker_until_the_window_opens(sandbox, sms_conn_env, sqlite_conn_id):
    from airflow.providers.standard.triggers.temporal import DateTimeTrigger
    from airflow.sdk.exceptions import TaskDeferred

    late_evening = advance_to(sandbox, "22:30", "Europe/Berlin")
    rows = [{"phone": phone(i), "first_name": "Ana", "city": "Rome"} for i in range(3)]
    op = window_operator(
        sandbox,
        sms_conn_env["textboost"],
        sqlite_conn_id,
        audience=rows,
        send_window=("09:00", "20:00"),
        window_timezone="Europe/Berlin",
        window_mode="defer",
    )
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context())
    opening = next_local(late_evening, "09:00", "Europe/Berlin")
    assert isinstance(deferred.value.trigger, DateTimeTrigger)
    assert deferred.value.trigger.moment == opening
    assert deferred.value.method_name == "execute_after_window"
    assert sandbox.request_count() == 0  # nothing sent before the window

    sandbox.advance((opening - late_evening).total_seconds() + 5)
    summary = op.execute_after_window(context(), event=None)
    assert summary["accepted"] == 3
    received = sent_messages(sandbox, "textboost")
    assert len(received) == 3
    assert all(opening <= effective(m) < opening.add(minutes=5) for m in received)


def test_defer_that_wakes_after_the_window_closed_defers_again(sandbox, sms_conn_env, sqlite_conn_id):
    from airflow.sdk.exceptions import TaskDeferred

    late_evening = advance_to(sandbox, "22:30", "Europe/Berlin")
    op = window_operator(
        sandbox,
        sms_conn_env["textboost"],
        sqlite_conn_id,
        audience=[{"phone": phone(1), "first_name": "Ana", "city": "Rome"}],
        send_window=("09:00", "20:00"),
        window_timezone="Europe/Berlin",
        window_mode="defer",
    )
    with pytest.raises(TaskDeferred) as deferred:
        op.execute_after_window(context(), event=None)
    assert deferred.value.trigger.moment == next_local(late_evening, "09:00", "Europe/Berlin")
    assert sandbox.request_count() == 0


def test_defer_with_a_timezone_column_sends_nobody_outside_their_own_window(
    sandbox, sms_conn_env, sqlite_conn_id
):
    """Berlin's window opens first; Los Angeles recipients are then scheduled for their own 22:00."""
    from airflow.sdk.exceptions import TaskDeferred

    zones = {"Europe/Berlin": range(0, 3), "America/Los_Angeles": range(3, 6)}
    rows = [
        {"phone": phone(i), "first_name": "Ana", "city": "Rome", "tz": tz}
        for tz, ids in zones.items()
        for i in ids
    ]
    evening = advance_to(sandbox, "21:30", "Europe/Berlin")
    op = window_operator(
        sandbox,
        sms_conn_env["smstools"],
        sqlite_conn_id,
        audience=rows,
        send_window=("22:00", "23:59"),
        window_timezone="Europe/Berlin",
        timezone_column="tz",
        window_mode="defer",
    )
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context())
    assert deferred.value.trigger.moment == evening.at(22, 0)

    sandbox.advance(32 * 60)  # woken at 22:02 Berlin, 13:02 or 14:02 in Los Angeles
    summary = op.execute_after_window(context(), event=None)

    assert summary["accepted"] == 6
    received = {m["recipient"]: m for m in sent_messages(sandbox, "smstools")}
    for tz, ids in zones.items():
        for i in ids:
            local = effective(received[phone(i)]).in_timezone(tz)
            assert (22, 0) <= (local.hour, local.minute) < (23, 59), (tz, local)
    la_opening = next_local(evening, "22:00", "America/Los_Angeles")
    assert {pendulum.parse(received[phone(i)]["send_at"]) for i in zones["America/Los_Angeles"]} == {
        la_opening
    }


def test_unknown_or_empty_timezone_cells(sandbox, sms_conn_env, sqlite_conn_id):
    """An unknown zone rejects its row (recorded, so a retry does not trip on it); an empty cell
    (None, NaN, blank) means window_timezone."""
    cells = ["Europe/Berlin", None, float("nan"), "  ", "Mars/Olympus", "Asia/Tokyo"]
    people = pd.DataFrame(
        [{"phone": phone(i), "first_name": "Ana", "city": "Rome", "tz": tz} for i, tz in enumerate(cells)]
    )
    late_evening = advance_to(sandbox, "22:30", "Europe/Berlin")  # 06:30 in Tokyo: closed there too
    options = dict(
        audience=people, send_window=("09:00", "20:00"), window_timezone="Europe/Berlin", timezone_column="tz"
    )
    summary = window_operator(sandbox, sms_conn_env["textboost"], sqlite_conn_id, **options).execute(
        context()
    )

    assert (summary["accepted"], summary["rejected"]) == (5, 1)
    [rejected] = MessageLedger(sqlite_conn_id).in_state("spring-sale", [REJECTED])
    assert (rejected.recipient, rejected.error) == (phone(4), "unknown timezone 'Mars/Olympus'")
    send_at = {m["recipient"]: pendulum.parse(m["send_at"]) for m in sent_messages(sandbox, "textboost")}
    berlin = next_local(late_evening, "09:00", "Europe/Berlin")
    assert [send_at[phone(i)] for i in range(4)] == [berlin] * 4
    assert send_at[phone(5)] == next_local(late_evening, "09:00", "Asia/Tokyo")

    requests = sandbox.request_count()
    again = window_operator(sandbox, sms_conn_env["textboost"], sqlite_conn_id, **options).execute(context())
    assert again == summary
    assert sandbox.request_count() == requests


def test_a_long_run_schedules_against_the_current_time_not_the_start(sandbox, sms_conn_env, sqlite_conn_id):
    """The run starts ten minutes before the window opens and the clock passes the opening after the
    first batch: the batches after it are sent at once, none with a schedule time in the past (which
    TextBoost refuses)."""
    start = advance_to(sandbox, "08:50", "Europe/Berlin")
    people = [{"phone": phone(i), "first_name": "Ana", "city": "Rome"} for i in range(30)]
    op = window_operator(
        sandbox,
        sms_conn_env["textboost"],
        sqlite_conn_id,
        audience=people,
        send_window=("09:00", "20:00"),
        window_timezone="Europe/Berlin",
        chunk_size=10,
        batch_size=10,
    )
    real_send = op.hook.send_batch

    def slow_first_batch(messages):
        results = real_send(messages)
        if messages[0].to == phone(0):
            sandbox.advance(30 * 60)  # now 09:20: the window is open
        return results

    op.hook.send_batch = slow_first_batch
    summary = op.execute(context())

    assert (summary["accepted"], summary["rejected"]) == (30, 0)
    received = {m["recipient"]: m for m in sent_messages(sandbox, "textboost")}
    opening = start.at(9, 0)
    assert {pendulum.parse(received[phone(i)]["send_at"]) for i in range(10)} == {opening}
    later = [received[phone(i)] for i in range(10, 30)]
    assert all(opening.add(minutes=20) <= effective(m) < opening.add(minutes=25) for m in later)


def test_a_long_run_past_the_closing_schedules_the_rest_for_the_next_opening(
    sandbox, sms_conn_env, sqlite_conn_id
):
    """The window closes while the messages are built: those built after 20:00 wait for tomorrow."""
    start = advance_to(sandbox, "19:50", "Europe/Berlin")
    people = [{"phone": phone(i), "first_name": "Ana", "city": "Rome"} for i in range(30)]
    op = window_operator(
        sandbox,
        sms_conn_env["smstools"],
        sqlite_conn_id,
        audience=people,
        send_window=("09:00", "20:00"),
        window_timezone="Europe/Berlin",
        batch_size=10,
    )
    real_send, real_send_at_in = op.hook.send_batch, op.send_at_in
    first_batch_sent, asked = threading.Event(), []

    def send(messages):
        results = real_send(messages)
        first_batch_sent.set()
        return results

    def slow_first_batch(tz):
        asked.append(tz)
        if len(asked) == 11:  # building the second batch, once the first left: it took twenty minutes
            assert first_batch_sent.wait(30)
            sandbox.advance(20 * 60)
        return real_send_at_in(tz)

    op.hook.send_batch = send
    op.send_at_in = slow_first_batch
    summary = op.execute(context())

    assert summary["accepted"] == 30
    received = {m["recipient"]: m for m in sent_messages(sandbox, "smstools")}
    assert all(start <= effective(received[phone(i)]) < start.at(20, 0) for i in range(10))
    tomorrow = next_local(start, "09:00", "Europe/Berlin")
    assert {pendulum.parse(received[phone(i)]["send_at"]) for i in range(10, 30)} == {tomorrow}
