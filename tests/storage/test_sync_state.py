"""The contact sync state and reject tables on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from airflow_provider_sms.storage import sync_state
from airflow_provider_sms.storage.sync_state import ContactRejects, ContactSyncState, SyncedContact


@pytest.fixture
def state(sql_conn_id):
    table = ContactSyncState(sql_conn_id, gateway="smstools")
    table.ensure_table()
    yield table
    table.close()


def test_rows_are_saved_replaced_loaded_and_removed(state):
    state.save("10", [("+491", "c1", "+491", "h1"), ("+492", None, "+492", None)], "run1")
    state.save("10", [("+491", "c1", "+491", "h2")], "run2")
    state.save("11", [("+491", "x", "+491", "other list")], "run2")

    assert state.load("10", ["+491", "+492", "+493"]) == {
        "+491": SyncedContact("+491", "c1", "+491", "h2"),
        "+492": SyncedContact("+492", None, "+492", None),
    }
    assert state.count_in_flight("10") == 1
    state.remove("10", ["+492"])
    assert list(state.iter_list("10")) == [SyncedContact("+491", "c1", "+491", "h2")]


def test_a_list_is_complete_only_once_marked_and_keeps_its_name(state):
    state.save("10", [("+491", "c1", "+491", "h1")], "run1")
    assert not state.is_complete("10")

    state.mark_list("10", "customers", "run1")
    state.mark_list("10", None, "run2")  # a run given the id, not the name

    assert state.is_complete("10")
    assert state.find_list("customers") == "10"
    assert state.find_list("others") is None
    assert list(state.iter_list("10")) == [SyncedContact("+491", "c1", "+491", "h1")]  # not the list row


def test_a_whole_list_is_read_in_pages(state, monkeypatch):
    monkeypatch.setattr(sync_state, "PAGE", 3)
    state.save("10", [(f"k{i:02d}", str(i), None, "h") for i in range(10)], "run1")

    assert [row.key for row in state.iter_list("10")] == [f"k{i:02d}" for i in range(10)]


def test_drop_stale_forgets_what_this_run_did_not_write(state):
    state.mark_list("10", "customers", "old")
    state.save("10", [("a", "1", None, "h"), ("b", "2", None, "h")], "old")
    state.save("10", [("a", "1", None, "h")], "new")

    state.drop_stale("10", "new")

    assert [row.key for row in state.iter_list("10")] == ["a"]
    assert state.is_complete("10")  # the list row stays


def test_exists_tells_whether_the_table_was_created(sql_conn_id):
    table = ContactSyncState(sql_conn_id, "not_yet", gateway="textboost")
    assert table.exists() is False
    table.ensure_table()
    assert table.exists() is True
    table.close()


def test_schema_qualified_state_table_on_postgres(postgres_conn_id):
    table = ContactSyncState(postgres_conn_id, "public.contact_state", gateway="textboost")
    table.ensure_table()
    table.mark_list("g1", "vip", "run1")
    table.mark_list("g1", None, "run2")
    assert table.find_list("vip") == "g1"
    table.close()


def test_rejects_of_a_run_are_replaced_by_its_next_try(sql_conn_id):
    rejects = ContactRejects(sql_conn_id, "sms_contact_rejects")
    rejects.ensure_table()
    rejects.add("run1", [(3, "smstools", "10", None, "12", "too short", "invalid_phone")])
    rejects.add("run2", [(5, "smstools", "10", None, "x", "contains letters", "invalid_phone")])

    rejects.clear("run1")
    rejects.add("run1", [(4, "smstools", "10", "+491", "+491", "refused", "103")])

    rows = rejects.query("SELECT run_key, source_row, reason FROM sms_contact_rejects ORDER BY run_key")
    assert rows == [("run1", 4, "refused"), ("run2", 5, "contains letters")]
    rejects.close()


def test_a_held_list_lock_makes_a_second_holder_wait_then_fail_naming_the_list(sql_conn_id):
    ContactSyncState(sql_conn_id, gateway="textboost").ensure_table()
    first = sync_state.SyncLock(sql_conn_id, "sms_contact_sync", "textboost", "token-1", "crm.sync.run-1")
    second = sync_state.SyncLock(sql_conn_id, "sms_contact_sync", "textboost", "token-2", "crm.sync.run-2")
    first.acquire("id:42", timeout=1)
    try:
        with pytest.raises(
            sync_state.SyncLockedError, match=r"another sync of textboost list id:42 .*crm\.sync\.run-1"
        ):
            second.acquire("id:42", timeout=0.5)
        second.acquire("id:43", timeout=0.5)  # another list: no wait
    finally:
        first.release()
    second.acquire("id:42", timeout=0.5)  # released: taken at once
    second.release()


def test_a_lock_whose_holder_stopped_renewing_is_taken_over(sql_conn_id, monkeypatch):
    ContactSyncState(sql_conn_id, gateway="textboost").ensure_table()
    monkeypatch.setattr(sync_state, "LOCK_HEARTBEAT", 3600)  # the first holder never renews
    monkeypatch.setattr(sync_state, "LOCK_LEASE", 0.3)
    dead = sync_state.SyncLock(sql_conn_id, "sms_contact_sync", "textboost", "token-1", "run-1")
    dead.acquire("id:42", timeout=1)
    alive = sync_state.SyncLock(sql_conn_id, "sms_contact_sync", "textboost", "token-2", "run-2")
    alive.acquire("id:42", timeout=5)
    state = ContactSyncState(sql_conn_id, gateway="textboost")
    try:
        assert not state.refresh_lock("id:42", "token-1") and state.refresh_lock("id:42", "token-2")
        assert state.find_list("id:42") is None and not state.is_complete("42")  # lock rows are no list
    finally:
        state.close()
        alive.release()
        dead._stop.set()
        dead.state.close()
