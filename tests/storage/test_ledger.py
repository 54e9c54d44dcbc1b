from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_sms.messages import SendOutcome
from airflow_provider_sms.storage.ledger import (
    ACCEPTED,
    AMBIGUOUS,
    COLUMNS,
    GATEWAY_INDEX,
    KEY,
    LEGACY_GATEWAY_INDEX,
    PENDING,
    REJECTED,
    SENDING,
    SUPPRESSED,
    LedgerEntry,
    MessageLedger,
    idempotency_key,
)
from airflow_provider_sms.storage.table import quote_name, utcnow


@pytest.fixture
def ledger(sql_conn_id):
    ledger = MessageLedger(sql_conn_id, "sms_messages", gateway="smstools", sms_conn_id="smstools_default")
    ledger.ensure_table()
    ledger.ensure_table()  # idempotent
    yield ledger
    ledger.close()


def _entry(phone: str, state: str = PENDING) -> LedgerEntry:
    return LedgerEntry(phone, state, idempotency_key("c1", phone), body_hash="h", segments=1)


def test_record_is_idempotent_per_campaign_and_recipient(ledger):
    assert ledger.record("c1", [_entry("+4915100000001"), _entry("+4915100000002")]) == 2
    ledger.mark("c1", [SendOutcome("+4915100000001", ACCEPTED, "m-1", "queued", None, None)])
    # A re-run: only the new row is inserted, and the count says so (the newsletter relies on it).
    assert ledger.record("c1", [_entry("+4915100000001"), _entry("+4915100000003")]) == 1
    rows = ledger.load("c1", ["+4915100000001", "+4915100000002", "+4915100000003", "+4915100000009"])
    assert {r: e.state for r, e in rows.items()} == {
        "+4915100000001": ACCEPTED,  # not reset by the re-run
        "+4915100000002": PENDING,
        "+4915100000003": PENDING,
    }
    assert rows["+4915100000001"].message_id == "m-1"
    assert ledger.counts("c1") == {ACCEPTED: 1, PENDING: 2}
    assert ledger.counts("other campaign") == {}


def test_state_transitions_and_message_ids(ledger):
    phones = [f"+49151000001{i:02d}" for i in range(30)]
    ledger.record("c1", [_entry(p) for p in phones])
    sent_at, claimed = ledger.claim("c1", [(p, None, None) for p in phones[:20]])
    assert sent_at.tzinfo is not None
    assert claimed == set(phones[:20])
    ledger.mark("c1", [SendOutcome(p, ACCEPTED, f"id-{p}", "queued", "queued", None) for p in phones[:19]])
    ledger.mark("c1", [SendOutcome(phones[19], REJECTED, None, None, None, "Phone number is not valid")])
    assert ledger.counts("c1") == {ACCEPTED: 19, REJECTED: 1, PENDING: 10}
    assert sorted(ledger.message_ids("c1")) == sorted(f"id-{p}" for p in phones[:19])
    (rejected,) = ledger.in_state("c1", [REJECTED])
    assert rejected.error == "Phone number is not valid"
    ledger.claim("c1", [(phones[20], None, None)])
    (in_flight,) = ledger.in_state("c1", [SENDING])
    assert in_flight.recipient == phones[20]
    assert in_flight.sent_at is not None


def test_load_handles_more_recipients_than_one_in_clause(ledger):
    phones = [f"+4915100{i:05d}" for i in range(1_200)]
    ledger.record("c1", [_entry(p) for p in phones])
    assert len(ledger.load("c1", phones)) == 1_200


def test_recent_counts_count_what_left_from_other_campaigns_since_a_time(ledger):
    """The frequency cap's query: accepted, sending and ambiguous rows of other campaigns with
    ``sent_at`` at or after ``since``; pending, rejected, suppressed and the asking campaign's own
    rows never count."""
    a, b = "+4915100000001", "+4915100000002"
    for campaign in ("c1", "c2", "c3", "c4", "own"):
        ledger.record(campaign, [_entry(a), _entry(b)])
    sent_at, _ = ledger.claim("c1", [(a, None, None), (b, None, None)])
    ledger.mark("c1", [SendOutcome(a, ACCEPTED, "m1"), SendOutcome(b, REJECTED, error="no")])
    ledger.claim("c2", [(a, None, None)])  # sending: may have left
    ledger.claim("c3", [(a, None, None), (b, None, None)])
    ledger.mark("c3", [SendOutcome(a, AMBIGUOUS), SendOutcome(b, SUPPRESSED, error="opted out")])
    ledger.claim("own", [(a, None, None)])
    ledger.mark("own", [SendOutcome(a, ACCEPTED, "m2")])
    # c4 stays pending

    since = sent_at - timedelta(seconds=1)
    assert ledger.recent_counts([a, b, "+4915100000003"], since=since, other_than="own") == {a: 3}
    assert ledger.recent_counts([a], since=since, other_than="c4") == {a: 4}
    assert ledger.recent_counts([a, b], since=utcnow() + timedelta(seconds=1), other_than="own") == {}
    ledger.ensure_recipient_index()
    ledger.ensure_recipient_index()  # idempotent
    assert ledger.suppressed_reasons() == {"opted out": 1}
    assert ledger.suppressed_reasons("c1") == {}


def test_suppress_changes_only_rows_still_pending(ledger):
    a, b = "+4915100000001", "+4915100000002"
    ledger.record("c1", [_entry(a), _entry(b)])
    ledger.claim("c1", [(a, None, None)])
    ledger.mark("c1", [SendOutcome(a, ACCEPTED, "m1")])
    ledger.suppress("c1", {a: "opted out", b: "frequency cap"})
    rows = ledger.load("c1", [a, b])
    assert (rows[a].state, rows[b].state, rows[b].error) == (ACCEPTED, SUPPRESSED, "frequency cap")


def test_idempotency_key_is_digits_stable_and_distinct():
    key = idempotency_key("campaign-1", "+4915123456789")
    assert key.isdigit() and len(key) <= 15
    assert key == idempotency_key("campaign-1", "+4915123456789")
    assert key != idempotency_key("campaign-2", "+4915123456789")
    assert key != idempotency_key("campaign-1", "+4915123456788")


@pytest.mark.parametrize("bad", ["sms; DROP TABLE x", "a.b.c", "", "1abc", 'x"y', "name with space"])
def test_table_names_are_validated(bad):
    with pytest.raises(ValueError, match="name"):
        quote_name(bad)


def test_table_names_are_quoted():
    assert quote_name("sms_messages") == '"sms_messages"'
    assert quote_name("marketing.sms_messages") == '"marketing"."sms_messages"'


def test_claim_covers_more_recipients_than_one_in_clause(ledger):
    phones = [f"+4915100{i:05d}" for i in range(1_200)]
    ledger.record("c1", [_entry(p) for p in phones])
    ledger.record("c2", [_entry(p) for p in phones[:10]])
    sent_at, claimed = ledger.claim("c1", [(p, None, None) for p in phones[:1_100]])
    assert len(claimed) == 1_100
    assert ledger.counts("c1") == {SENDING: 1_100, PENDING: 100}
    assert ledger.counts("c2") == {PENDING: 10}  # another campaign's rows are untouched
    rows = ledger.load("c1", phones[:1_100])
    assert {e.sent_at is not None for e in rows.values()} == {True}
    ledger.mark("c1", [SendOutcome(phones[0], PENDING)])  # proven absent: to be sent again
    assert ledger.claim("c1", [(phones[0], None, None)])[1] == {phones[0]}
    (attempts,) = ledger.query(
        f"SELECT attempts FROM {ledger.quoted} WHERE campaign_key = {ledger.ph} AND recipient = {ledger.ph}",
        ["c1", phones[0]],
    )
    assert attempts == (2,)
    assert sent_at.tzinfo is not None


def test_analyze_leaves_a_plan_that_uses_the_primary_key(ledger):
    phones = [f"+4915100{i:05d}" for i in range(3_000)]
    ledger.record("c1", [_entry(p) for p in phones])
    ledger.analyze()  # a no-op on SQLite; on PostgreSQL the statistics it writes steer the plan
    if ledger.is_postgres:
        plan = "\n".join(
            row[0]
            for row in ledger.query(
                f"EXPLAIN SELECT state FROM {ledger.quoted} WHERE campaign_key = %s AND recipient IN (%s, %s)",
                ["c1", phones[0], phones[1]],
            )
        )
        assert "Index" in plan and "Seq Scan" not in plan, plan
    assert len(ledger.load("c1", phones[:2])) == 2


def test_a_row_is_claimed_by_one_try_only(ledger):
    phones = [f"+4915100{i:05d}" for i in range(10)]
    ledger.record("c1", [_entry(p) for p in phones])
    _, first = ledger.claim("c1", [(p, None, None) for p in phones[:6]])
    # A second try racing for an overlapping set gets only what is still pending.
    _, second = ledger.claim("c1", [(p, None, None) for p in phones[4:]])
    assert first == set(phones[:6])
    assert second == set(phones[6:])
    assert ledger.counts("c1") == {SENDING: 10}


def test_a_claim_writes_the_hash_of_a_changed_text(ledger):
    ledger.record("c1", [_entry("+4915100000001"), _entry("+4915100000002")])
    ledger.claim("c1", [("+4915100000001", "new-hash", 3), ("+4915100000002", None, None)])
    rows = ledger.load("c1", ["+4915100000001", "+4915100000002"])
    assert (rows["+4915100000001"].body_hash, rows["+4915100000001"].segments) == ("new-hash", 3)
    assert (rows["+4915100000002"].body_hash, rows["+4915100000002"].segments) == ("h", 1)


def _hold_lock(conn_env: dict, name: str, ready, release) -> None:
    """In another process: take the ledger's lock ``name`` and keep it until told to let go."""
    import os

    os.environ.update(conn_env)
    other = MessageLedger(
        next(k for k in ("sms_sqlite", "sms_postgres") if f"AIRFLOW_CONN_{k.upper()}" in conn_env)
    )
    with other.exclusive(name, timeout=30):
        ready.set()
        release.wait(30)


@contextmanager
def lock_held_elsewhere(name: str):
    """Another process (spawned) holding the ledger's lock ``name``; yields its process and the
    event that tells it to let go."""
    import multiprocessing
    import os

    env = {k: v for k, v in os.environ.items() if k.startswith("AIRFLOW_CONN_") or k.startswith("AIRFLOW__")}
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(env, name, ready, release))
    holder.start()
    try:
        assert ready.wait(60), "the other process never took the lock"
        yield holder, release
    finally:
        if holder.is_alive():  # a killed holder may have died inside the event's lock: leave it be
            release.set()
            holder.join(30)
        if holder.is_alive():
            holder.kill()
            holder.join(30)


def test_exclusive_lock_keeps_a_second_process_out_until_the_first_lets_go(ledger):
    from airflow_provider_sms.storage.table import SqlLockTimeout

    with lock_held_elsewhere("campaign-1") as (holder, release):
        with (
            pytest.raises(SqlLockTimeout, match="still held by another process"),
            ledger.exclusive("campaign-1", timeout=1),
        ):
            pass
        with ledger.exclusive("campaign-2", timeout=1):  # another name is another lock
            pass
        release.set()
        holder.join(30)
        with ledger.exclusive("campaign-1", timeout=10):  # free once its holder let go
            pass


def test_exclusive_lock_dies_with_a_killed_holder(ledger):
    with lock_held_elsewhere("campaign-1") as (holder, _release):
        holder.kill()  # SIGKILL: no clean-up runs
        holder.join(30)
        with ledger.exclusive("campaign-1", timeout=10):
            pass


def test_a_campaign_key_longer_than_its_column_is_refused_naming_it(ledger):
    longest = "k" * 250
    assert ledger.record(longest, [_entry("+4915100000001")]) == 1  # the limit itself fits
    with pytest.raises(ValueError, match=r"campaign_key is 251 characters long.* at most 250"):
        ledger.record("k" * 251, [_entry("+4915100000002")])
    assert ledger.counts("k" * 251) == {} and ledger.counts(longest) == {PENDING: 1}


def _sent(ledger: MessageLedger, campaign: str, phones: list[str], state: str, at) -> None:
    """Rows of ``campaign`` to ``phones`` in ``state``, sent at ``at``: two statements, whatever the count."""
    ledger.record(campaign, [LedgerEntry(p, PENDING, idempotency_key(campaign, p)) for p in phones])
    [(condition, params)] = ledger.one_of("recipient", phones)
    ledger.execute(
        f"UPDATE {ledger.quoted} SET state = {ledger.ph}, sent_at = {ledger.ph} "
        f"WHERE campaign_key = {ledger.ph} AND {condition}",
        [state, ledger.ts(at), campaign, *params],
    )


def test_the_frequency_cap_counts_every_recipient_of_a_chunk_in_one_query(ledger, monkeypatch):
    """The cap is set-based: 2,500 recipients, one query (no per-recipient look-ups); it counts
    other campaigns' rows that left (accepted, sending, ambiguous) at or after ``since``, never the
    asking campaign's own, nor pending, rejected or suppressed rows, nor older ones."""
    t0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
    phones = [f"+4915300{i:06d}" for i in range(2_500)]
    _sent(ledger, "a", phones, ACCEPTED, t0)  # exactly at since: counted
    _sent(ledger, "b", phones[:1_000], ACCEPTED, t0 + timedelta(days=1))
    _sent(ledger, "b", phones[1_000:1_100], SENDING, t0 + timedelta(days=1))
    _sent(ledger, "b", phones[1_100:1_200], AMBIGUOUS, t0 + timedelta(days=1))
    for state, part in [(PENDING, phones[1_200:1_300]), (REJECTED, phones[1_300:1_400])]:
        _sent(ledger, "b", part, state, t0 + timedelta(days=1))
    _sent(ledger, "b", phones[1_400:1_500], SUPPRESSED, t0 + timedelta(days=1))
    _sent(ledger, "old", phones[:100], ACCEPTED, t0 - timedelta(seconds=1))  # before since
    _sent(ledger, "self", phones, ACCEPTED, t0 + timedelta(days=2))  # the asking campaign
    ledger.ensure_recipient_index()

    queries = []
    real = ledger.query
    monkeypatch.setattr(ledger, "query", lambda sql, params=(): queries.append(sql) or real(sql, params))
    counts = ledger.recent_counts([*phones, "+4915399999999"], since=t0, other_than="self")

    assert len(queries) == 1
    assert "+4915399999999" not in counts  # never messaged: absent, not 0
    expected = {p: 2 if i < 1_200 else 1 for i, p in enumerate(phones)}
    assert counts == expected
    later = ledger.recent_counts(phones, since=t0 + timedelta(seconds=1), other_than="self")
    assert later == {p: 1 for p in phones[:1_200]}


def test_postgres_status_updates_after_a_send_are_hot(postgres_conn_id):
    """On PostgreSQL the ledger leaves room on its pages (FILLFACTOR): after a send (rows recorded,
    claimed and marked batch by batch, as the send does), the delivery report's status update finds
    room next to each row and writes no new index entries (a HOT update) for nearly all of them
    (1,900 of 2,000 here; 157 with the pages filled to 100 %)."""
    from airflow_provider_sms.messages import DeliveryStatus, StatusReport
    from airflow_provider_sms.storage.ledger import ledger_update_statements
    from airflow_provider_sms.storage.report import DeliveryReportTable, StagedWriter, status_rows

    ledger = MessageLedger(postgres_conn_id, "sms_messages", gateway="smstools")
    phones = [f"+4915100{i:05d}" for i in range(2_000)]
    try:
        ledger.ensure_table()
        for start in range(0, len(phones), 500):
            part = phones[start : start + 500]
            ledger.record("c1", [_entry(p) for p in part])
            ledger.claim("c1", [(p, None, None) for p in part])
            ledger.mark("c1", [SendOutcome(p, ACCEPTED, f"m{p}", "queued", "queued") for p in part])
        (options,) = ledger.query("SELECT reloptions FROM pg_class WHERE oid = 'sms_messages'::regclass")
    finally:
        ledger.close()
    assert options == (["fillfactor=50"],)
    now = utcnow()
    staged = status_rows(
        [StatusReport(f"m{p}", DeliveryStatus.DELIVERED, "delivered") for p in phones], "smstools", now
    )
    report = DeliveryReportTable(postgres_conn_id, "sms_delivery_report")
    try:
        report.ensure_tables()
        writer = StagedWriter(report)
        with report.transaction() as cursor:
            writer._create_staging(cursor)
            writer._load(cursor, writer.prepare(staged))
            for sql, params in ledger_update_statements(report, "sms_messages", now):
                cursor.execute(sql, tuple(params))
            cursor.execute(
                "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = 'sms_messages'"
            )
            updated, hot = cursor.fetchone()
    finally:
        report.close()
    assert updated == len(phones)
    assert hot >= 0.9 * updated, (hot, updated)


def test_evolve_is_dataclasses_replace():
    """evolve on a LedgerEntry (the send path's copy with changes) equals dataclasses.replace over
    random entries and changes, keeps the original as it was, and refuses unknown names alike."""
    import dataclasses
    import pickle
    import random
    from datetime import datetime, timezone

    from airflow_provider_sms.messages import evolve
    from airflow_provider_sms.storage.ledger import LedgerEntry

    rng = random.Random(20)
    values = {
        "recipient": ["+31612345678", "invalid:3:x"],
        "state": ["pending", "sending", "accepted", "rejected"],
        "idempotency_key": ["1", "281474976710655"],
        "message_id": [None, "m1", ""],
        "body_hash": [None, "abc"],
        "segments": [None, 0, 1, 3],
        "error": [None, "", "opted out"],
        "source_row": [None, 0, 7],
        "sent_at": [None, datetime(2026, 1, 1, tzinfo=timezone.utc)],
    }
    names = list(values)
    for _ in range(2000):
        entry = LedgerEntry(**{n: rng.choice(v) for n, v in values.items()})
        before = dataclasses.astuple(entry)
        changes = {n: rng.choice(values[n]) for n in rng.sample(names, rng.randrange(len(names) + 1))}
        got, want = evolve(entry, **changes), dataclasses.replace(entry, **changes)
        assert got == want and hash(got) == hash(want) and repr(got) == repr(want)
        assert type(got) is LedgerEntry and dataclasses.astuple(entry) == before
        assert pickle.loads(pickle.dumps(got)) == want
        with pytest.raises(dataclasses.FrozenInstanceError):
            got.state = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        evolve(LedgerEntry("+31612345678", "pending", "1"), stat="accepted")


def test_a_new_ledger_indexes_only_rows_with_a_message_id(ledger):
    """The gateway's ids are indexed for the rows that have one (GATEWAY_INDEX): pending and sending
    rows add no entry, and a look-up by id still finds every accepted row."""
    phones = [f"+4915100{i:05d}" for i in range(6)]
    ledger.record("c1", [_entry(p) for p in phones])
    ledger.claim("c1", [(p, None, None) for p in phones[:4]])
    ledger.mark("c1", [SendOutcome(p, ACCEPTED, f"m-{p}", "queued", None, None) for p in phones[:3]])
    ledger.mark("c1", [SendOutcome(phones[3], AMBIGUOUS)])  # left, no id
    assert ledger.index_exists(GATEWAY_INDEX[0])
    assert not ledger.index_exists(LEGACY_GATEWAY_INDEX)
    if ledger.is_postgres:
        (definition,) = ledger.query(
            "SELECT pg_get_indexdef(%s::regclass)", [f"sms_messages_{GATEWAY_INDEX[0]}"]
        )
    else:
        (definition,) = ledger.query(
            "SELECT sql FROM sqlite_master WHERE name = ?", [f"sms_messages_{GATEWAY_INDEX[0]}"]
        )
    assert "WHERE" in definition[0] and "message_id IS NOT NULL" in definition[0], definition
    rows = ledger.query(
        f"SELECT recipient FROM sms_messages WHERE gateway = {ledger.ph} AND message_id = {ledger.ph}",
        ["smstools", f"m-{phones[1]}"],
    )
    assert rows == [(phones[1],)]
    assert sorted(ledger.message_ids("c1")) == sorted(f"m-{p}" for p in phones[:3])


def test_a_ledger_created_before_keeps_its_full_index(sql_conn_id):
    """A table an earlier version created (full ``<table>_gateway_message_id`` index) keeps that
    index and gets no second one: two indexes on the ids would cost every write more."""
    ledger = MessageLedger(sql_conn_id, "old_ledger", gateway="smstools")
    try:
        ledger.create(COLUMNS, KEY)
        ledger.create_index(LEGACY_GATEWAY_INDEX, ("gateway", "message_id"))  # as before this change
        ledger.ensure_table()
        assert ledger.index_exists(LEGACY_GATEWAY_INDEX)
        assert not ledger.index_exists(GATEWAY_INDEX[0])
        ledger.record("c1", [_entry("+4915100000001")])
        ledger.claim("c1", [("+4915100000001", None, None)])
        ledger.mark("c1", [SendOutcome("+4915100000001", ACCEPTED, "m-1", "queued", None, None)])
        assert ledger.message_ids("c1") == ["m-1"]
    finally:
        ledger.close()
