"""The safety rails on SmsBulkSendOperator, end to end: the sandbox gateway over HTTP, the ledger
and the opt-out table on SQLite and PostgreSQL. Opt-outs, the frequency cap and the budget."""

from __future__ import annotations

import json
import os
import sqlite3
from collections import Counter
from contextlib import closing
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pendulum
import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_sms.campaign import rails
from airflow_provider_sms.messages import OptOutEvent
from airflow_provider_sms.operators.send import SmsBulkSendOperator
from airflow_provider_sms.storage.ledger import ACCEPTED, PENDING, SUPPRESSED, MessageLedger
from airflow_provider_sms.storage.opt_outs import OptOutTable
from airflow_provider_sms.storage.table import get_sql_hook
from tests.reliability.leakscan import airflow_dags_test, airflow_env

GATEWAYS = ["smstools", "smsgateway24", "textboost"]
SENDS = ("message/send", "addalotofsms", "addsms", "sms/send")
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def phone(i: int) -> str:
    return f"+49151{30_000_000 + i:08d}"


def audience(numbers) -> list[dict]:
    return [{"phone": phone(i), "name": f"N{i}"} for i in numbers]


def context() -> dict:
    return {
        "ti": SimpleNamespace(dag_id="campaigns", task_id="send", try_number=1, map_index=-1),
        "logical_date": pendulum.datetime(2026, 11, 23, 9),
        "run_id": "manual__1",
        "ds": "2026-11-23",
        "params": {},
    }


def send(conn_id: str, ledger_conn_id: str, key: str, numbers, **kwargs) -> dict:
    return SmsBulkSendOperator(
        task_id="send",
        sms_conn_id=conn_id,
        audience=kwargs.pop("audience", None) or audience(numbers),
        message=kwargs.pop("message", "Hi {{ name }}, spring sale. Reply STOP to opt out"),
        ledger_conn_id=ledger_conn_id,
        campaign_key=key,
        **kwargs,
    ).execute(context())


def opt(conn_id: str, *events: OptOutEvent, table: str = "sms_opt_outs") -> None:
    opt_outs = OptOutTable(conn_id, table)
    try:
        opt_outs.ensure()
        opt_outs.record(events)
    finally:
        opt_outs.close()


def stop(i: int, at: datetime = T0) -> OptOutEvent:
    return OptOutEvent(phone(i), True, at, gateway="smstools", source="reply", keyword="STOP")


def start(i: int, at: datetime) -> OptOutEvent:
    return OptOutEvent(phone(i), False, at, gateway="smstools", source="reply", keyword="START")


def received(sandbox, gateway: str) -> dict[str, int]:
    return {m["recipient"]: m["count"] for m in sandbox.messages(gateway=gateway)}


def sends(sandbox, gateway: str) -> int:
    return sum(sandbox.request_count(gateway=gateway, path_contains=p) for p in SENDS)


def ledger_rows(conn_id: str, key: str) -> dict[str, tuple[str, str | None]]:
    ledger = MessageLedger(conn_id)
    try:
        rows = ledger.in_state(key, [PENDING, ACCEPTED, SUPPRESSED, "rejected", "sending", "ambiguous"])
    finally:
        ledger.close()
    return {e.recipient: (e.state, e.error) for e in rows}


# -- opt-outs --------------------------------------------------------------------------------------


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_an_opted_out_number_is_suppressed_and_a_start_re_subscribes_it(
    gateway, sandbox, sms_conn_env, sql_conn_id
):
    conn_id = sms_conn_env[gateway]
    opt(sql_conn_id, stop(1), stop(2))

    first = send(conn_id, sql_conn_id, "c1", range(5))

    assert sorted(received(sandbox, gateway)) == [phone(0), phone(3), phone(4)]
    assert (first["accepted"], first["suppressed"]) == (3, 2)
    assert first["suppressed_reasons"] == {"opted out": 2}
    rows = ledger_rows(sql_conn_id, "c1")
    assert rows[phone(1)] == rows[phone(2)] == (SUPPRESSED, "opted out")

    # number 1 answers START later: the next campaign reaches it again, number 2 still not
    opt(sql_conn_id, start(1, T0 + timedelta(days=1)))
    second = send(conn_id, sql_conn_id, "c2", range(5))
    assert (second["accepted"], second["suppressed_reasons"]) == (4, {"opted out": 1})
    assert phone(1) in received(sandbox, gateway)
    assert phone(2) not in received(sandbox, gateway)


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_honour_opt_outs_false_reaches_an_opted_out_number(gateway, sandbox, sms_conn_env, sqlite_conn_id):
    opt(sqlite_conn_id, stop(1))
    summary = send(sms_conn_env[gateway], sqlite_conn_id, "otp", range(3), honour_opt_outs=False)
    assert summary["accepted"] == 3
    assert phone(1) in received(sandbox, gateway)


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_an_opt_out_is_matched_by_number_whatever_the_audience_calls_or_writes_it(
    gateway, sandbox, sms_conn_env, sqlite_conn_id
):
    """The opt-out table holds E.164 numbers, no customer: a number written nationally or with
    spaces and brackets, under any customer id, is the opted-out number."""
    opt(sqlite_conn_id, stop(1), stop(2))
    rows = [
        {"customer_id": "c-0", "phone": phone(0), "name": "A"},
        {"customer_id": "c-77", "phone": f"0{phone(1)[3:6]} {phone(1)[6:]}", "name": "B"},  # 0151 3...
        {
            "customer_id": "c-78",
            "phone": f"+49 ({phone(2)[3:6]}) {phone(2)[6:10]}-{phone(2)[10:]}",
            "name": "C",
        },
        {"customer_id": "c-79", "phone": f"0049{phone(3)[3:]}", "name": "D"},
    ]

    summary = send(sms_conn_env[gateway], sqlite_conn_id, "formats", None, audience=rows, default_region="DE")

    assert (summary["accepted"], summary["suppressed_reasons"]) == (2, {"opted out": 2})
    assert sorted(received(sandbox, gateway)) == [phone(0), phone(3)]
    rows = ledger_rows(sqlite_conn_id, "formats")
    assert rows[phone(1)] == rows[phone(2)] == (SUPPRESSED, "opted out")


def test_the_opt_out_table_is_created_empty_on_a_first_campaign(sandbox, sms_conn_env, sqlite_conn_id):
    summary = send(sms_conn_env["smstools"], sqlite_conn_id, "first", range(3))
    assert summary["accepted"] == 3
    tables = get_sql_hook(sqlite_conn_id).get_records(
        "SELECT name FROM sqlite_master WHERE name = 'sms_opt_outs'"
    )
    assert tables == [("sms_opt_outs",)]


def test_an_opt_out_table_on_its_own_connection_and_name(
    sandbox, sms_conn_env, sqlite_conn_id, postgres_conn_id
):
    opt(postgres_conn_id, stop(0), table="crm_stops")
    summary = send(
        sms_conn_env["smstools"],
        sqlite_conn_id,
        "elsewhere",
        range(2),
        opt_out_conn_id=postgres_conn_id,
        opt_out_table="crm_stops",
    )
    assert (summary["accepted"], summary["suppressed_reasons"]) == (1, {"opted out": 1})
    assert list(received(sandbox, "smstools")) == [phone(1)]


def test_an_unreachable_opt_out_database_fails_the_task_and_sends_nothing(
    sandbox, sms_conn_env, sqlite_conn_id, monkeypatch
):
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMS_NOWHERE",
        '{"conn_type": "postgres", "host": "127.0.0.1", "port": 1, "login": "x", "schema": "x"}',
    )
    with pytest.raises(Exception, match=r"(?i)connect") as failure:
        send(sms_conn_env["smstools"], sqlite_conn_id, "blind", range(3), opt_out_conn_id="sms_nowhere")
    assert not isinstance(failure.value, AirflowFailException)  # a database may come back: retried
    assert sandbox.request_count(gateway="smstools") == 0


def test_an_opt_out_after_a_failed_try_suppresses_the_rows_it_left_pending(
    sandbox, sms_conn_env, sqlite_conn_id
):
    """A try that recorded the audience but sent nothing (over budget); number 2 opts out; the
    next try suppresses it although its row was already in the ledger, and sends the rest."""
    conn_id = sms_conn_env["smstools"]
    with pytest.raises(AirflowFailException):
        send(conn_id, sqlite_conn_id, "late", range(4), max_cost=2)
    assert {state for state, _ in ledger_rows(sqlite_conn_id, "late").values()} == {PENDING}
    opt(sqlite_conn_id, stop(2))

    summary = send(conn_id, sqlite_conn_id, "late", range(4), max_cost=10)

    assert (summary["accepted"], summary["suppressed_reasons"]) == (3, {"opted out": 1})
    assert ledger_rows(sqlite_conn_id, "late")[phone(2)] == (SUPPRESSED, "opted out")
    assert phone(2) not in received(sandbox, "smstools")


def test_a_dry_run_counts_opt_outs_without_creating_a_table(
    sandbox, sms_conn_env, sqlite_conn_id, postgres_conn_id
):
    summary = send(sms_conn_env["textboost"], sqlite_conn_id, "dry", range(3), dry_run=True)
    assert summary["would_send"] == 3
    assert get_sql_hook(sqlite_conn_id).get_records("SELECT name FROM sqlite_master") == []

    opt(postgres_conn_id, stop(1))
    summary = send(sms_conn_env["textboost"], postgres_conn_id, "dry", range(3), dry_run=True)
    assert (summary["would_send"], summary["suppressed_reasons"]) == (2, {"opted out": 1})
    assert sandbox.request_count() == 0


# -- the frequency cap -----------------------------------------------------------------------------


def pin_clock(monkeypatch, moment: datetime) -> None:
    monkeypatch.setattr(rails, "now", lambda: moment)


def first_sent(conn_id: str, key: str) -> datetime:
    ledger = MessageLedger(conn_id)
    try:
        return ledger.first_sent_at(key)
    finally:
        ledger.close()


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_the_frequency_cap_holds_across_campaigns_and_a_retry_is_stable(
    gateway, sandbox, sms_conn_env, sql_conn_id, monkeypatch
):
    conn_id = sms_conn_env[gateway]
    send(conn_id, sql_conn_id, "week1-a", range(0, 6))
    send(conn_id, sql_conn_id, "week1-b", range(3, 9))
    # The cap's clock is pinned relative to when campaign a left: no wall-clock dependence.
    sent = first_sent(sql_conn_id, "week1-a")
    pin_clock(monkeypatch, sent + timedelta(days=6))
    cap = (2, "7d")

    summary = send(conn_id, sql_conn_id, "week1-c", range(0, 10), max_messages_per_recipient=cap)

    # 3, 4, 5 got two messages this week (a and b); the others one or none
    assert summary["suppressed_reasons"] == {"frequency cap": 3}
    assert summary["accepted"] == 7
    rows = ledger_rows(sql_conn_id, "week1-c")
    assert {r for r, (state, _) in rows.items() if state == SUPPRESSED} == {phone(3), phone(4), phone(5)}
    assert rows[phone(4)] == (SUPPRESSED, "frequency cap")
    per_recipient = Counter(m["recipient"] for m in sandbox.messages(gateway=gateway))
    assert [per_recipient[phone(i)] for i in (0, 3, 4, 5, 8, 9)] == [2, 2, 2, 2, 2, 1]

    # A retry of the capped campaign: nothing new sent, nothing newly capped (its own rows do not
    # count against it), even when the retry runs later, after the period has passed.
    before = sends(sandbox, gateway)
    assert send(conn_id, sql_conn_id, "week1-c", range(0, 10), max_messages_per_recipient=cap) == summary
    pin_clock(monkeypatch, sent + timedelta(days=30))
    assert send(conn_id, sql_conn_id, "week1-c", range(0, 10), max_messages_per_recipient=cap) == summary
    assert sends(sandbox, gateway) == before

    # Eight days after a and b: the period has passed, nobody is capped.
    pin_clock(monkeypatch, sent + timedelta(days=8))
    later = send(conn_id, sql_conn_id, "week2", range(0, 10), max_messages_per_recipient=cap)
    assert (later["accepted"], later["suppressed"]) == (10, 0)


def test_a_cap_of_one_counts_every_state_that_left_and_none_that_did_not(
    sandbox, sms_conn_env, sqlite_conn_id, monkeypatch
):
    """Counted: accepted (whatever its delivery status), sending, ambiguous. Not: pending,
    rejected, suppressed."""
    conn_id = sms_conn_env["smstools"]
    send(conn_id, sqlite_conn_id, "earlier", range(6))
    ledger = MessageLedger(sqlite_conn_id)
    ledger.execute(
        "UPDATE sms_messages SET state = CASE recipient "
        f"WHEN '{phone(1)}' THEN 'sending' WHEN '{phone(2)}' THEN 'ambiguous' WHEN '{phone(3)}' THEN 'pending' "
        f"WHEN '{phone(4)}' THEN 'rejected' WHEN '{phone(5)}' THEN 'suppressed' ELSE state END"
    )
    ledger.close()
    pin_clock(monkeypatch, first_sent(sqlite_conn_id, "earlier") + timedelta(hours=1))

    summary = send(conn_id, sqlite_conn_id, "now", range(6), max_messages_per_recipient=(1, 86_400))

    capped = {r for r, (_, reason) in ledger_rows(sqlite_conn_id, "now").items() if reason == "frequency cap"}
    assert capped == {phone(0), phone(1), phone(2)}
    assert summary["accepted"] == 3


def test_an_opt_out_is_the_reason_given_when_a_number_is_also_capped(
    sandbox, sms_conn_env, sqlite_conn_id, monkeypatch
):
    conn_id = sms_conn_env["textboost"]
    send(conn_id, sqlite_conn_id, "a", range(2))
    opt(sqlite_conn_id, stop(0))
    pin_clock(monkeypatch, first_sent(sqlite_conn_id, "a") + timedelta(minutes=5))
    summary = send(conn_id, sqlite_conn_id, "b", range(2), max_messages_per_recipient=(1, "1h"))
    assert summary["suppressed_reasons"] == {"frequency cap": 1, "opted out": 1}
    assert ledger_rows(sqlite_conn_id, "b")[phone(0)] == (SUPPRESSED, "opted out")


# -- the budget ------------------------------------------------------------------------------------


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_over_max_cost_sends_nothing_and_fails_without_retry(gateway, sandbox, sms_conn_env, sql_conn_id):
    # 12 recipients, 2 segments each: 24 segments x 0.5 = 12.0, over 10.0 by 2.0
    text = "x" * 200
    with pytest.raises(AirflowFailException, match=r"would cost 12 .* 2 more than max_cost=10"):
        send(
            sms_conn_env[gateway],
            sql_conn_id,
            "pricey",
            range(12),
            message=text,
            max_cost=10,
            cost_per_segment=0.5,
            chunk_size=5,  # the whole audience is estimated, not the first chunk
        )
    assert sends(sandbox, gateway) == 0
    rows = ledger_rows(sql_conn_id, "pricey")
    assert len(rows) == 12 and {state for state, _ in rows.values()} == {PENDING}


@pytest.mark.parametrize("gateway", ["smstools", "textboost"])
def test_over_the_gateway_balance_sends_nothing(gateway, sandbox, sms_conn_env, sqlite_conn_id):
    sandbox.set_balance(gateway, 5)
    kwargs = {"cost_per_segment": 1.0} if gateway == "smstools" else {}  # Smstools' balance is money
    with pytest.raises(AirflowFailException, match=r"balance has 5 .*left: 3 short") as failure:
        send(sms_conn_env[gateway], sqlite_conn_id, "broke", range(8), **kwargs)
    assert "nothing was sent" in str(failure.value)
    assert sends(sandbox, gateway) == 0

    # Once credits are bought, a retry sends: the estimate is what is still pending.
    sandbox.set_balance(gateway, 8)
    assert send(sms_conn_env[gateway], sqlite_conn_id, "broke", range(8), **kwargs)["accepted"] == 8


OVER_BUDGET_DAG = """
from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_provider_sms.operators.send import SmsBulkSendOperator

with DAG("sms_over_budget", schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False):
    for task_id, conn_id, size, kwargs in [
        # 12 recipients, 2 segments each: 24 segments x 0.5 = 12.0, over max_cost=10 by 2
        ("over_max_cost", "smstools_sandbox", 12, dict(max_cost=10, cost_per_segment=0.5)),
        # 8 SMS units wanted, the account has 5 left (set by the test): 3 short
        ("over_balance", "textboost_sandbox", 8, {}),
    ]:
        SmsBulkSendOperator(
            task_id=task_id,
            sms_conn_id=conn_id,
            audience=[{"phone": f"+49151{30_000_000 + i:08d}"} for i in range(size)],
            message="x" * (200 if task_id == "over_max_cost" else 10),
            ledger_conn_id="noretry_warehouse",
            campaign_key=task_id,
            retries=3,
            retry_delay=timedelta(seconds=1),
            **kwargs,
        )
"""


@pytest.mark.integration
@pytest.mark.timeout(900)
def test_over_budget_in_a_real_dag_run_fails_after_one_try_of_three_retries(sandbox, sms_conn_env, tmp_path):
    """``airflow dags test``: tasks with ``retries=3`` over ``max_cost`` and over the balance end
    ``failed`` on their first try (never ``up_for_retry``), having sent nothing."""
    sandbox.set_balance("textboost", 5)
    dags, home = tmp_path / "dags", tmp_path / "airflow"
    dags.mkdir()
    (dags / "sms_over_budget.py").write_text(OVER_BUDGET_DAG)
    connections = {
        conn_id: json.loads(os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"])
        for conn_id in sms_conn_env.values()
    }
    connections["noretry_warehouse"] = {"conn_type": "sqlite", "host": str(tmp_path / "warehouse.db")}

    [_, run] = airflow_dags_test(home, airflow_env(home, dags, connections), ["sms_over_budget"])

    output = run.output.read_text() + "".join(p.read_text() for p in (home / "logs").rglob("*.log"))
    with closing(sqlite3.connect(home / "airflow.db")) as meta:
        tries = dict(
            meta.execute(
                "SELECT task_id, state || ' on try ' || try_number FROM task_instance WHERE dag_id = ?",
                ("sms_over_budget",),
            )
        )
        earlier = meta.execute("SELECT count(*) FROM task_instance_history WHERE dag_id = 'sms_over_budget'")
        [(earlier_tries,)] = earlier.fetchall()
    assert tries == {"over_max_cost": "failed on try 1", "over_balance": "failed on try 1"}, output[-2000:]
    assert earlier_tries == 0  # a retry would have archived the failed try here
    assert sends(sandbox, "smstools") == sends(sandbox, "textboost") == 0
    assert sandbox.messages() == []
    assert "would cost 12" in output and "2 more than max_cost=10" in output
    assert "balance has 5" in output and "left: 3 short" in output
    assert run.returncode != 0


def test_smsgateway24_has_no_balance_to_check_and_sends(
    sandbox, sms_conn_env, sqlite_conn_id, caplog, capsys
):
    summary = send(sms_conn_env["smsgateway24"], sqlite_conn_id, "phone", range(3), max_cost=3)
    assert summary["accepted"] == 3
    assert "smsgateway24 has no balance endpoint" in caplog.text + capsys.readouterr().out


def test_smstools_balance_without_a_price_is_not_compared(
    sandbox, sms_conn_env, sqlite_conn_id, caplog, capsys
):
    summary = send(sms_conn_env["smstools"], sqlite_conn_id, "unpriced", range(3))
    assert summary["accepted"] == 3
    assert "set cost_per_segment" in caplog.text + capsys.readouterr().out
    assert sandbox.request_count(gateway="smstools", path_contains="balance") == 0


def test_the_budget_price_comes_from_the_connection_extra(sandbox, sms_conn_env, sqlite_conn_id, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMSTOOLS_PRICED",
        json.dumps(
            {
                "conn_type": "smstools",
                "host": sandbox.url,
                "login": "sandbox-client-id",
                "password": "sandbox-client-secret-0123456789",
                "extra": {"sender_id": "ACME", "cost_per_segment": 0.25},
            }
        ),
    )
    with pytest.raises(AirflowFailException, match=r"would cost 1.5 \(6 segments x 0.25"):
        send("smstools_priced", sqlite_conn_id, "priced", range(6), max_cost=1)
    assert sends(sandbox, "smstools") == 0


def test_rail_arguments_are_checked_when_the_dag_is_parsed(sms_conn_env):
    def make(**kwargs):
        return SmsBulkSendOperator(
            task_id="t", sms_conn_id="smstools_sandbox", audience=[], message="x", **kwargs
        )

    for bad in [(0, "7d"), (2, "7 fortnights"), (2, -5), (2,), "2/7d"]:
        with pytest.raises(ValueError, match=r"max_messages_per_recipient|period"):
            make(max_messages_per_recipient=bad)
    with pytest.raises(ValueError, match="max_cost"):
        make(max_cost=-1)
    with pytest.raises(ValueError, match="invalid table name"):
        make(opt_out_table="opt_outs; DROP TABLE x")
    op = make(max_messages_per_recipient=(3, timedelta(days=7)), max_cost=5)
    assert (op.max_messages_per_recipient, op.max_cost, op.honour_opt_outs) == (
        (3, timedelta(days=7)),
        5.0,
        True,
    )
    assert "honour_opt_outs" in SmsBulkSendOperator.__doc__ and "max_cost" in SmsBulkSendOperator.__doc__
