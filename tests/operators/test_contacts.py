"""SmsContactSyncOperator end to end: the sandbox gateway over HTTP, the sync state on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import traceback
from collections import Counter
from types import SimpleNamespace

import pandas as pd
import pendulum
import pytest

from airflow_provider_sms.exceptions import SmsTransientError, SmsValidationError
from airflow_provider_sms.operators.contacts import SmsContactSyncOperator
from airflow_provider_sms.storage.table import get_sql_hook

GATEWAYS = ["smstools", "smsgateway24", "textboost"]
LISTABLE = ["smstools", "textboost"]  # SmsGateway24 cannot list, update or delete contacts
MAPPING = {"mobile": "phone", "first": "first_name", "last": "last_name"}
# Substrings of the sandbox's "METHOD /route" names for each kind of contact write.
WRITES = {
    "smstools": {"create": "POST /v1/contact", "update": "PATCH /v1/contact", "delete": "DELETE /v1/contact"},
    "smsgateway24": {"create": "savecontact", "update": "-", "delete": "-"},
    "textboost": {"create": "}/store", "update": "}/update/", "delete": "}/delete/"},
}
COUNTS = ("input", "created", "updated", "deleted", "unchanged", "rejected")


def phone(i: int) -> str:
    return f"+49151{10_000_000 + i:08d}"


def customers(size: int, start: int = 0) -> pd.DataFrame:
    """``size`` customers; phones written the way warehouses do ("+49 151 ...")."""
    return pd.DataFrame(
        {
            "customer_id": range(start, start + size),
            "mobile": [f"+49 151 {10_000_000 + i:08d}" for i in range(start, start + size)],
            "first": [f"Name{i}" for i in range(start, start + size)],
            "last": ["Smith"] * size,
        }
    )


def context() -> dict:
    return {
        "ti": SimpleNamespace(dag_id="crm", task_id="sync", try_number=1, map_index=-1),
        "logical_date": pendulum.datetime(2026, 11, 23, 2),
        "run_id": "scheduled__2026-11-23",
        "ds": "2026-11-23",
        "params": {},
    }


def sync(conn_id: str, state_conn_id: str, data: pd.DataFrame, **kwargs) -> dict:
    kwargs.setdefault("list_name", "customers")
    kwargs.setdefault("create_list_if_missing", True)
    op = SmsContactSyncOperator(
        task_id="sync",
        sms_conn_id=conn_id,
        data=data,
        column_mapping=kwargs.pop("column_mapping", MAPPING),
        state_conn_id=state_conn_id,
        **kwargs,
    )
    return op.execute(context())


def counts(summary: dict) -> tuple:
    return tuple(summary[name] for name in COUNTS)


def writes(sandbox, gateway: str) -> dict[str, int]:
    return {
        kind: sandbox.request_count(gateway=gateway, path_contains=path)
        for kind, path in WRITES[gateway].items()
    }


def stored(sandbox, gateway: str) -> list[dict]:
    return sandbox.contacts(gateway=gateway)


def rejects(conn_id: str) -> list[tuple]:
    return get_sql_hook(conn_id).get_records(
        "SELECT source_row, reason, error_code FROM sms_contact_rejects ORDER BY source_row"
    )


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_sync_creates_all_then_sends_nothing_then_only_the_diff(gateway, sandbox, sms_conn_env, sql_conn_id):
    conn_id, people = sms_conn_env[gateway], customers(2_000)

    first = sync(conn_id, sql_conn_id, people)

    assert counts(first) == (2_000, 2_000, 0, 0, 0, 0)
    contacts = stored(sandbox, gateway)
    assert len(contacts) == 2_000
    assert {c["phone"] for c in contacts} == {phone(i) for i in range(2_000)}
    assert all(c["count"] == 1 and str(c["list_id"]) == first["list_id"] for c in contacts)

    requests_before = sandbox.request_count(gateway=gateway)
    second = sync(conn_id, sql_conn_id, people)

    assert sandbox.request_count(gateway=gateway) == requests_before  # not one request
    assert counts(second) == (2_000, 0, 0, 0, 2_000, 0)

    # Change 10, add 5, remove 3.
    changed = people.copy()
    changed.loc[0:9, "last"] = "Changed"
    changed = pd.concat([changed.drop(index=[100, 101, 102]), customers(5, start=5_000)], ignore_index=True)
    mode = "upsert" if gateway == "smsgateway24" else "mirror"  # SmsGateway24 cannot delete
    before = writes(sandbox, gateway)

    third = sync(conn_id, sql_conn_id, changed, mode=mode)

    after = writes(sandbox, gateway)
    contacts = stored(sandbox, gateway)
    if gateway == "smsgateway24":
        assert counts(third) == (2_002, 5, 10, 0, 1_987, 0)
        assert after["create"] - before["create"] == 15  # an update is a re-save
        # The gateway keeps the earlier record of a re-saved contact: documented, nothing deleted.
        assert len(contacts) == 2_015
        assert Counter(c["count"] for c in contacts) == {1: 1_995, 2: 20}
        newest = {c["phone"]: c for c in sorted(contacts, key=lambda c: c["id"])}
        assert newest[phone(0)]["first_name"] == "Name0 Changed"
    else:
        assert counts(third) == (2_002, 5, 10, 3, 1_987, 0)
        batches = 1 if gateway == "smstools" else 5  # Smstools adds contacts in one batch request
        assert {k: after[k] - before[k] for k in after} == {"create": batches, "update": 10, "delete": 3}
        assert len(contacts) == 2_002
        assert all(c["count"] == 1 for c in contacts)
        by_phone = {c["phone"]: c for c in contacts}
        assert set(by_phone) == {phone(i) for i in [*range(2_000), *range(5_000, 5_005)]} - {
            phone(100),
            phone(101),
            phone(102),
        }
        assert [by_phone[phone(i)]["last_name"] for i in range(11)] == ["Changed"] * 10 + ["Smith"]

    requests_before = sandbox.request_count(gateway=gateway)
    fourth = sync(conn_id, sql_conn_id, changed, mode=mode)
    assert sandbox.request_count(gateway=gateway) == requests_before
    assert counts(fourth) == (2_002, 0, 0, 0, 2_002, 0)


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_add_only_ignores_changes_and_removals(gateway, sandbox, sms_conn_env, sqlite_conn_id):
    conn_id, people = sms_conn_env[gateway], customers(100)
    sync(conn_id, sqlite_conn_id, people, mode="add_only")
    changed = people.copy()
    changed.loc[0:9, "last"] = "Changed"
    changed = pd.concat([changed.drop(index=[50, 51, 52]), customers(5, start=500)], ignore_index=True)

    summary = sync(conn_id, sqlite_conn_id, changed, mode="add_only")

    assert counts(summary) == (102, 5, 0, 0, 97, 0)
    contacts = stored(sandbox, gateway)
    assert len(contacts) == 105
    assert all(c["count"] == 1 for c in contacts)
    assert phone(50) in {c["phone"] for c in contacts}  # removals stay
    assert writes(sandbox, gateway)["update"] == 0


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_invalid_phones_and_duplicates_are_rejects_with_reasons(
    gateway, sandbox, sms_conn_env, sqlite_conn_id
):
    people = customers(50)
    people.loc[5, "mobile"] = "12"
    people.loc[6, "mobile"] = "call me"
    people.loc[7, "mobile"] = None
    people.loc[8, "mobile"] = "0049 151 10000000"  # the number of row 0, written another way

    summary = sync(sms_conn_env[gateway], sqlite_conn_id, people)

    assert counts(summary) == (50, 46, 0, 0, 0, 4)
    assert rejects(sqlite_conn_id) == [
        (
            5,
            "unknown country code (give a default region or an international number starting with +)",
            "invalid_phone",
        ),
        (6, "contains letters", "invalid_phone"),
        (7, "empty", "invalid_phone"),
        (8, "duplicate of row 0", "duplicate"),
    ]
    assert len(stored(sandbox, gateway)) == 46


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_gateway_refusals_are_rejects_of_their_source_rows_and_retried_next_run(
    gateway, sandbox, sms_conn_env, sqlite_conn_id, monkeypatch
):
    """A number our parser lets through but the gateway refuses (Smstools: error 103 in a batch)."""
    from airflow_provider_sms.campaign import contacts
    from airflow_provider_sms.hooks import base

    real = base.normalize_phone

    def lenient(raw, default_region=None):
        return "+4915112" if str(raw).replace(" ", "") == "+4915112" else real(raw, default_region)

    monkeypatch.setattr(contacts, "normalize_phone", lenient)
    monkeypatch.setattr(base, "normalize_phone", lenient)
    people = customers(20)
    people.loc[13, "mobile"] = "+49 151 12"

    first = sync(sms_conn_env[gateway], sqlite_conn_id, people)

    assert counts(first) == (20, 19, 0, 0, 0, 1)
    [(row, reason, _)] = rejects(sqlite_conn_id)
    assert row == 13
    assert "4915112" in reason and "valid" in reason  # the gateway's own words
    assert len(stored(sandbox, gateway)) == 19
    creates_before = writes(sandbox, gateway)["create"]

    second = sync(sms_conn_env[gateway], sqlite_conn_id, people)

    assert counts(second) == (20, 0, 0, 0, 19, 1)  # the refused row was tried again
    assert writes(sandbox, gateway)["create"] == creates_before + 1


@pytest.mark.parametrize("gateway", LISTABLE)
def test_lost_state_is_rebuilt_from_the_gateway_list_without_duplicates(
    gateway, sandbox, sms_conn_env, sql_conn_id
):
    conn_id, people = sms_conn_env[gateway], customers(300)
    first = sync(conn_id, sql_conn_id, people)
    get_sql_hook(sql_conn_id).run("DROP TABLE sms_contact_sync")
    writes_before = writes(sandbox, gateway)

    # The list is found by name at the gateway, read, and matched: nothing is added twice.
    again = sync(conn_id, sql_conn_id, people)

    assert again["reconciled"] is True
    assert again["list_id"] == first["list_id"]
    assert counts(again) == (300, 0, 0, 0, 300, 0)
    assert writes(sandbox, gateway) == writes_before
    contacts = stored(sandbox, gateway)
    assert len(contacts) == 300
    assert all(c["count"] == 1 for c in contacts)

    requests_before = sandbox.request_count(gateway=gateway)
    assert counts(sync(conn_id, sql_conn_id, people)) == (300, 0, 0, 0, 300, 0)
    assert sandbox.request_count(gateway=gateway) == requests_before  # the state is whole again


@pytest.mark.parametrize("gateway", LISTABLE)
def test_full_refresh_reconciles_changes_made_at_the_gateway(gateway, sandbox, sms_conn_env, sqlite_conn_id):
    conn_id, people = sms_conn_env[gateway], customers(60)
    sync(conn_id, sqlite_conn_id, people.iloc[:50])
    # Someone edits the list by hand: the state does not know; full_refresh reads the gateway's list.
    extra_at_gateway = customers(1, start=900)
    sync(conn_id, sqlite_conn_id, extra_at_gateway, state_table="someone_else")

    summary = sync(conn_id, sqlite_conn_id, people, mode="mirror", full_refresh=True)

    assert summary["reconciled"] is True
    assert counts(summary) == (60, 10, 0, 1, 50, 0)
    assert {c["phone"] for c in stored(sandbox, gateway)} == {phone(i) for i in range(60)}


def test_contacts_that_left_the_input_stay_known_after_a_reconcile_for_a_later_mirror(
    sandbox, sms_conn_env, sqlite_conn_id
):
    conn_id, people = sms_conn_env["textboost"], customers(30)
    sync(conn_id, sqlite_conn_id, people)
    upserted = sync(conn_id, sqlite_conn_id, people.iloc[:28], full_refresh=True)
    requests_before = sandbox.request_count(gateway="textboost")

    mirrored = sync(conn_id, sqlite_conn_id, people.iloc[:28], mode="mirror")

    assert counts(upserted) == (28, 0, 0, 0, 28, 0)
    assert counts(mirrored) == (28, 0, 0, 2, 28, 0)
    assert sandbox.request_count(gateway="textboost") == requests_before + 2  # two deletes, no listing
    assert len(stored(sandbox, "textboost")) == 28


def test_openlineage_facets_without_the_provider_are_none(sms_conn_env, sqlite_conn_id, monkeypatch):
    monkeypatch.setitem(sys.modules, "airflow.providers.openlineage.extractors", None)  # as if absent
    op = SmsContactSyncOperator(
        task_id="sync",
        sms_conn_id=sms_conn_env["smstools"],
        data=[],
        list_id="42",
        state_conn_id=sqlite_conn_id,
    )
    assert op.get_openlineage_facets_on_complete(None) is None


def test_openlineage_facets_name_the_contact_list_and_the_tables(sms_conn_env, postgres_conn_id):
    pytest.importorskip("airflow.providers.openlineage")
    op = SmsContactSyncOperator(
        task_id="sync",
        sms_conn_id=sms_conn_env["smstools"],
        data=[],
        list_id="42",
        state_conn_id=postgres_conn_id,
    )

    lineage = op.get_openlineage_facets_on_complete(None)

    database = json.loads(os.environ["AIRFLOW_CONN_SMS_POSTGRES"])["schema"]
    authority = op.hook.base_url.split("://", 1)[1]
    assert {(d.namespace, d.name) for d in lineage.outputs} == {
        (f"smstools://{authority}", "contact_lists/42"),
        ("postgres://127.0.0.1:5432", f"{database}.public.sms_contact_sync"),
        ("postgres://127.0.0.1:5432", f"{database}.public.sms_contact_rejects"),
    }


def test_smsgateway24_without_state_for_a_given_tag_refuses_before_sending(
    sandbox, sms_conn_env, sqlite_conn_id
):
    conn_id, people = sms_conn_env["smsgateway24"], customers(30)
    first = sync(conn_id, sqlite_conn_id, people)
    get_sql_hook(sqlite_conn_id).run("DROP TABLE sms_contact_sync")
    requests_before = sandbox.request_count(gateway="smsgateway24")

    with pytest.raises(ValueError, match="cannot list a list's contacts"):
        sync(conn_id, sqlite_conn_id, people, list_id=first["list_id"], list_name=None)

    assert sandbox.request_count(gateway="smsgateway24") == requests_before
    assert len(stored(sandbox, "smsgateway24")) == 30


def test_smsgateway24_lost_state_with_a_list_name_syncs_into_a_fresh_tag(
    sandbox, sms_conn_env, sqlite_conn_id
):
    conn_id, people = sms_conn_env["smsgateway24"], customers(30)
    first = sync(conn_id, sqlite_conn_id, people)
    get_sql_hook(sqlite_conn_id).run("DROP TABLE sms_contact_sync")

    again = sync(conn_id, sqlite_conn_id, people)

    assert again["list_id"] != first["list_id"]
    assert counts(again) == (30, 30, 0, 0, 0, 0)
    contacts = stored(sandbox, "smsgateway24")
    assert Counter(str(c["list_id"]) for c in contacts) == {first["list_id"]: 30, again["list_id"]: 30}
    assert all(c["count"] == 1 for c in contacts)  # no tag holds a number twice


def test_smsgateway24_refuses_mirror_mode_before_sending(sandbox, sms_conn_env, sqlite_conn_id):
    with pytest.raises(ValueError, match="mode='mirror' deletes contacts, which smsgateway24 cannot do"):
        sync(sms_conn_env["smsgateway24"], sqlite_conn_id, customers(10), mode="mirror")
    assert sandbox.request_count(gateway="smsgateway24") == 0


@pytest.mark.parametrize("gateway", LISTABLE)
def test_a_lost_answer_is_settled_from_the_gateway_list_on_the_next_run(
    gateway, sandbox, sms_conn_env, sqlite_conn_id, monkeypatch
):
    conn_id, people = sms_conn_env[gateway], customers(120)
    op = SmsContactSyncOperator(
        task_id="sync",
        sms_conn_id=conn_id,
        data=people,
        column_mapping=MAPPING,
        list_name="customers",
        create_list_if_missing=True,
        state_conn_id=sqlite_conn_id,
        batch_size=50,
    )
    real = op.hook.upsert_contacts
    calls = []

    def loses_second_answer(contacts, list_id):
        calls.append(len(contacts))
        results = real(contacts, list_id)
        if len(calls) == 2:
            raise SmsTransientError("read timeout", request_sent=True)
        return results

    monkeypatch.setattr(op.hook, "upsert_contacts", loses_second_answer)
    with pytest.raises(SmsTransientError):
        op.execute(context())
    assert calls == [50, 50]
    assert len(stored(sandbox, gateway)) == 100  # the second batch arrived; its answer did not

    summary = sync(conn_id, sqlite_conn_id, people)

    assert summary["reconciled"] is True
    contacts = stored(sandbox, gateway)
    assert len(contacts) == 120
    assert all(c["count"] == 1 for c in contacts)
    assert counts(summary) == (120, 120 - 100, 0, 0, 100, 0)


def test_smsgateway24_a_lost_answer_is_reported_as_ambiguous_not_saved_twice(
    sandbox, sms_conn_env, sqlite_conn_id, monkeypatch
):
    conn_id, people = sms_conn_env["smsgateway24"], customers(20)
    op = SmsContactSyncOperator(
        task_id="sync",
        sms_conn_id=conn_id,
        data=people,
        column_mapping=MAPPING,
        list_name="customers",
        create_list_if_missing=True,
        state_conn_id=sqlite_conn_id,
    )
    real = op.hook.upsert_contacts

    def loses_answer_for_row_7(contacts, list_id):
        results = real(contacts, list_id)
        if contacts[0].phone == phone(7):
            raise SmsTransientError("read timeout", request_sent=True)
        return results

    monkeypatch.setattr(op.hook, "upsert_contacts", loses_answer_for_row_7)
    with pytest.raises(SmsTransientError):
        op.execute(context())
    assert len(stored(sandbox, "smsgateway24")) == 8  # rows 0-7 reached the gateway

    summary = sync(conn_id, sqlite_conn_id, people)

    assert counts(summary) == (20, 12, 0, 0, 7, 1)
    [(row, reason, code)] = rejects(sqlite_conn_id)
    assert (row, code) == (7, "ambiguous")
    assert reason.startswith("ambiguous: an earlier write of this contact lost its answer")
    assert Counter(c["count"] for c in stored(sandbox, "smsgateway24")) == {1: 20}

    resaved = sync(conn_id, sqlite_conn_id, people, resave_ambiguous=True)
    assert counts(resaved) == (20, 1, 0, 0, 19, 0)
    assert Counter(c["count"] for c in stored(sandbox, "smsgateway24")) == {
        1: 19,
        2: 2,
    }  # two records of row 7


@pytest.mark.parametrize("gateway", LISTABLE)
def test_dry_run_returns_the_plan_and_changes_nothing(gateway, sandbox, sms_conn_env, sqlite_conn_id):
    conn_id, people = sms_conn_env[gateway], customers(40)
    sync(conn_id, sqlite_conn_id, people)
    changed = people.copy()
    changed.loc[0:1, "last"] = "Changed"
    changed.loc[2, "mobile"] = "bogus"
    changed = pd.concat([changed.drop(index=[30]), customers(3, start=700)], ignore_index=True)
    requests_before = sandbox.request_count(gateway=gateway)

    plan = sync(conn_id, sqlite_conn_id, changed, mode="mirror", dry_run=True)

    assert sandbox.request_count(gateway=gateway) == requests_before
    assert plan["dry_run"] is True
    # Row 2's number is unreadable now: keyed by phone, its old contact has left the input (mirror).
    assert counts(plan) == (42, 3, 2, 2, 36, 1)
    sample = plan["sample"]
    assert [s["key"] for s in sample["created"]] == [phone(700), phone(701), phone(702)]
    assert [s["key"] for s in sample["updated"]] == [phone(0), phone(1)]
    assert [s["key"] for s in sample["deleted"]] == [phone(2), phone(30)]
    assert sample["rejected"] == [{"row": 2, "phone": "bogus", "reason": "contains letters"}]
    assert rejects(sqlite_conn_id) == []
    # The real run does what the plan said.
    assert counts(sync(conn_id, sqlite_conn_id, changed, mode="mirror")) == (42, 3, 2, 2, 36, 1)


def test_dry_run_of_a_first_sync_creates_no_list_and_no_table(sandbox, sms_conn_env, sqlite_conn_id):
    plan = sync(sms_conn_env["smsgateway24"], sqlite_conn_id, customers(10), dry_run=True)

    assert counts(plan) == (10, 10, 0, 0, 0, 0)
    assert plan["list_id"] is None
    assert sandbox.request_count() == 0
    tables = get_sql_hook(sqlite_conn_id).get_records("SELECT name FROM sqlite_master WHERE type = 'table'")
    assert tables == []


def test_a_sync_where_most_rows_are_rejected_fails_after_recording_them(
    sandbox, sms_conn_env, sqlite_conn_id
):
    people = customers(10)
    people.loc[0:5, "mobile"] = "n/a"

    with pytest.raises(SmsValidationError, match="6 of 10 contacts were rejected"):
        sync(sms_conn_env["textboost"], sqlite_conn_id, people)

    assert [row for row, _, _ in rejects(sqlite_conn_id)] == [0, 1, 2, 3, 4, 5]
    assert len(stored(sandbox, "textboost")) == 4


def test_contacts_from_sql_read_in_chunks_with_a_customer_key(
    sandbox, sms_conn_env, sql_conn_id, tmp_path, monkeypatch
):
    """The warehouse on SQLite and PostgreSQL; the state in a SQLite file of its own (a SQLite file
    cannot be written by one connection while another streams a query from it)."""
    state = {"conn_type": "sqlite", "host": str(tmp_path / "state.db")}
    monkeypatch.setenv("AIRFLOW_CONN_SYNC_STATE", json.dumps(state))
    people = customers(90)
    people["birthday"] = "1990-05-17"
    warehouse = get_sql_hook(sql_conn_id)
    warehouse.run(
        "CREATE TABLE customers (customer_id INTEGER, mobile TEXT, first TEXT, last TEXT, birthday TEXT)"
    )
    warehouse.insert_rows(
        "customers", [tuple(r.values()) for r in people.to_dict("records")], executemany=True
    )
    query = "SELECT * FROM customers ORDER BY customer_id"
    mapping = {**MAPPING, "birthday": "birthday"}

    first = sync(
        sms_conn_env["smstools"],
        "sync_state",
        None,
        sql=query,
        sql_conn_id=sql_conn_id,
        column_mapping=mapping,
        key_column="customer_id",
        chunk_size=40,
    )
    # Customer 3 changes phone: with a customer key that is an update of the same contact.
    warehouse.run(f"UPDATE customers SET mobile = '{phone(3_000)}' WHERE customer_id = 3")
    second = sync(
        sms_conn_env["smstools"],
        "sync_state",
        None,
        sql=query,
        sql_conn_id=sql_conn_id,
        column_mapping=mapping,
        key_column="customer_id",
        chunk_size=40,
        mode="mirror",
    )

    assert counts(first) == (90, 90, 0, 0, 0, 0)
    assert counts(second) == (90, 0, 1, 0, 89, 0)
    contacts = stored(sandbox, "smstools")
    assert len(contacts) == 90
    assert phone(3_000) in {c["phone"] for c in contacts} and phone(3) not in {c["phone"] for c in contacts}
    assert {c["fields"].get("birthday") for c in contacts} == {"1990-05-17"}


def test_mirror_with_an_empty_input_deletes_nothing_unless_allowed(sandbox, sms_conn_env, sqlite_conn_id):
    conn_id = sms_conn_env["textboost"]
    sync(conn_id, sqlite_conn_id, customers(30))
    empty = customers(0)

    with pytest.raises(
        ValueError, match=r"empty input would delete all 30 contacts of textboost list \S+; nothing"
    ):
        sync(conn_id, sqlite_conn_id, empty, mode="mirror")
    with pytest.raises(ValueError, match="allow_empty_mirror=True"):
        sync(conn_id, sqlite_conn_id, empty, mode="mirror", dry_run=True)
    assert len(stored(sandbox, "textboost")) == 30
    assert writes(sandbox, "textboost")["delete"] == 0

    emptied = sync(conn_id, sqlite_conn_id, empty, mode="mirror", allow_empty_mirror=True)
    assert emptied["deleted"] == 30 and stored(sandbox, "textboost") == []


def _sync_in_a_process(
    conn_id: str, state_conn_id: str, size: int, list_kwargs: dict, barrier, results
) -> None:
    try:
        barrier.wait(timeout=120)
        results.put(("ok", sync(conn_id, state_conn_id, customers(size), batch_size=50, **list_kwargs)))
    except BaseException:
        results.put(("error", traceback.format_exc()))


@pytest.mark.parametrize("by", ["name", "id"])
def test_two_concurrent_syncs_of_one_list_create_each_contact_once(by, sandbox, sms_conn_env, sql_conn_id):
    conn_id, size = sms_conn_env["textboost"], 400
    if by == "id":
        from airflow_provider_sms.hooks import get_gateway_hook

        list_kwargs = {"list_id": str(get_gateway_hook(conn_id).create_list("vip")), "list_name": None}
    else:
        list_kwargs = {"list_name": "customers", "create_list_if_missing": True}
    # spawn: fresh interpreters (the sandbox serves from a thread of this one); the connections
    # travel in the environment.
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    workers = [
        ctx.Process(
            target=_sync_in_a_process, args=(conn_id, sql_conn_id, size, list_kwargs, barrier, results)
        )
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=300) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)

    assert [kind for kind, _ in outcomes] == ["ok", "ok"], [
        detail for kind, detail in outcomes if kind != "ok"
    ]
    summaries = [summary for _, summary in outcomes]
    contacts = stored(sandbox, "textboost")
    assert len(contacts) == size and all(c["count"] == 1 for c in contacts)
    assert len({str(c["list_id"]) for c in contacts}) == 1
    assert {s["list_id"] for s in summaries} == {str(contacts[0]["list_id"])}
    # One created them all; the other waited for it, then found nothing to do.
    assert sorted((s["created"], s["unchanged"]) for s in summaries) == [(0, size), (size, 0)]
