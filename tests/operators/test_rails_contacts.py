"""Opt-outs in SmsContactSyncOperator, end to end: the sandbox gateway over HTTP, the sync state and
the opt-out table on SQLite and PostgreSQL. Smstools marks a contact ``unsubscribed``; TextBoost
leaves it out of the list (and removes it once it opts out); SmsGateway24 can only leave it out."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pandas as pd
import pendulum
import pytest

from airflow_provider_sms.messages import OptOutEvent
from airflow_provider_sms.operators.contacts import SmsContactSyncOperator
from airflow_provider_sms.storage.opt_outs import OptOutTable
from airflow_provider_sms.storage.table import get_sql_hook

GATEWAYS = ["smstools", "smsgateway24", "textboost"]
WRITES = {
    "smstools": {"create": "POST /v1/contact", "update": "PATCH /v1/contact", "delete": "DELETE /v1/contact"},
    "smsgateway24": {"create": "savecontact", "update": "-", "delete": "-"},
    "textboost": {"create": "}/store", "update": "}/update/", "delete": "}/delete/"},
}
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def phone(i: int) -> str:
    return f"+49151{40_000_000 + i:08d}"


def people(n: int = 6) -> pd.DataFrame:
    return pd.DataFrame({"phone": [f"0151 {40_000_000 + i:08d}" for i in range(n)], "first_name": "Kim"})


def context() -> dict:
    return {
        "ti": SimpleNamespace(dag_id="crm", task_id="sync", try_number=1, map_index=-1),
        "logical_date": pendulum.datetime(2026, 11, 23, 2),
        "run_id": "scheduled__2026-11-23",
        "ds": "2026-11-23",
        "params": {},
    }


def sync(conn_id: str, state_conn_id: str, **kwargs) -> dict:
    return SmsContactSyncOperator(
        task_id="sync",
        sms_conn_id=conn_id,
        data=kwargs.pop("data", None) if "data" in kwargs else people(),
        list_name="customers",
        create_list_if_missing=True,
        default_region="DE",
        state_conn_id=state_conn_id,
        **kwargs,
    ).execute(context())


def opt(conn_id: str, i: int, opted_out: bool, at: datetime) -> None:
    table = OptOutTable(conn_id)
    try:
        table.ensure()
        table.record([OptOutEvent(phone(i), opted_out, at, source="reply")])
    finally:
        table.close()


def in_list(sandbox, gateway: str) -> dict[str, bool]:
    """Phone -> unsubscribed, of the contacts the gateway holds."""
    return {
        c["phone"]: bool(int((c["fields"] or {}).get("unsubscribed", 0) or 0))
        for c in sandbox.contacts(gateway=gateway)
    }


def writes(sandbox, gateway: str) -> dict[str, int]:
    return {
        kind: sandbox.request_count(gateway=gateway, path_contains=p) for kind, p in WRITES[gateway].items()
    }


def reached(gateway: str, contacts: dict[str, bool]) -> set[str]:
    """The numbers a list send reaches: listed and not unsubscribed."""
    return {p for p, unsubscribed in contacts.items() if not unsubscribed}


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_an_opted_out_number_is_not_reached_through_the_list(gateway, sandbox, sms_conn_env, sql_conn_id):
    conn_id = sms_conn_env[gateway]
    opt(sql_conn_id, 1, True, T0)

    first = sync(conn_id, sql_conn_id)

    assert first["opted_out"] == 1
    contacts = in_list(sandbox, gateway)
    assert reached(gateway, contacts) == {phone(i) for i in (0, 2, 3, 4, 5)}
    if gateway == "smstools":  # kept in the group, marked
        assert contacts[phone(1)] is True
    else:  # not added
        assert phone(1) not in contacts

    # number 3 opts out after it was synced: the next sync sends that change, and only that
    opt(sql_conn_id, 3, True, T0 + timedelta(hours=1))
    before = writes(sandbox, gateway)
    second = sync(conn_id, sql_conn_id)
    sent = {k: v - before[k] for k, v in writes(sandbox, gateway).items()}
    contacts = in_list(sandbox, gateway)
    if gateway == "smstools":
        assert sent == {"create": 0, "update": 1, "delete": 0}
        assert (contacts[phone(3)], second["updated"]) == (True, 1)
    elif gateway == "textboost":
        assert sent == {"create": 0, "update": 0, "delete": 1}
        assert phone(3) not in contacts and second["deleted"] == 1
    else:  # SmsGateway24 cannot remove a contact from a tag: said, not hidden
        assert sent == {"create": 0, "update": 0, "delete": 0}
        assert second["opted_out_kept"] == 1
    assert second["opted_out"] == 2

    # an unchanged sync sends nothing
    before = writes(sandbox, gateway)
    third = sync(conn_id, sql_conn_id)
    assert writes(sandbox, gateway) == before
    assert third["opted_out"] == 2

    # number 1 answers START: it joins the list (Smstools: the flag is cleared)
    opt(sql_conn_id, 1, False, T0 + timedelta(hours=2))
    sync(conn_id, sql_conn_id)
    contacts = in_list(sandbox, gateway)
    assert phone(1) in reached(gateway, contacts)


@pytest.mark.parametrize("gateway", ["smstools", "textboost"])
def test_mirror_mode_marks_or_removes_an_opted_out_number(gateway, sandbox, sms_conn_env, sqlite_conn_id):
    conn_id = sms_conn_env[gateway]
    sync(conn_id, sqlite_conn_id, mode="mirror")
    opt(sqlite_conn_id, 2, True, T0)
    summary = sync(conn_id, sqlite_conn_id, mode="mirror", full_refresh=True)  # reconciling from the list
    contacts = in_list(sandbox, gateway)
    assert phone(2) not in reached(gateway, contacts)
    assert (phone(2) in contacts) is (gateway == "smstools")
    assert summary["deleted"] == (0 if gateway == "smstools" else 1)
    assert len(contacts) == (6 if gateway == "smstools" else 5)


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_honour_opt_outs_false_syncs_an_opted_out_number(gateway, sandbox, sms_conn_env, sqlite_conn_id):
    opt(sqlite_conn_id, 1, True, T0)
    summary = sync(sms_conn_env[gateway], sqlite_conn_id, honour_opt_outs=False)
    assert (summary["created"], summary["opted_out"]) == (6, 0)
    assert phone(1) in reached(gateway, in_list(sandbox, gateway))


def test_a_dry_run_reads_opt_outs_without_creating_the_table(
    sandbox, sms_conn_env, sqlite_conn_id, postgres_conn_id
):
    summary = sync(sms_conn_env["textboost"], sqlite_conn_id, dry_run=True)
    assert (summary["created"], summary["opted_out"]) == (6, 0)
    assert get_sql_hook(sqlite_conn_id).get_records("SELECT name FROM sqlite_master") == []

    opt(postgres_conn_id, 4, True, T0)
    summary = sync(sms_conn_env["textboost"], sqlite_conn_id, dry_run=True, opt_out_conn_id=postgres_conn_id)
    assert (summary["created"], summary["opted_out"]) == (5, 1)
    assert writes(sandbox, "textboost") == {"create": 0, "update": 0, "delete": 0}
