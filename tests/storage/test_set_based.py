"""The ledger's set-based batch statements against its per-row reference (storage/reference.py):
the same random sequences of record / record_sending / claim / mark / suppress, run on both, on SQLite and on
PostgreSQL, must leave identical tables and return the same answers; and each batch change is one
statement. The contact sync state's saves and removes likewise against its per-row statements."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_sms.messages import SendOutcome
from airflow_provider_sms.storage import ledger as ledger_module
from airflow_provider_sms.storage import sync_state as sync_state_module
from airflow_provider_sms.storage.ledger import (
    ACCEPTED,
    AMBIGUOUS,
    COLUMNS,
    PENDING,
    REJECTED,
    SENDING,
    STATES,
    SUPPRESSED,
    LedgerEntry,
    MessageLedger,
    idempotency_key,
)
from airflow_provider_sms.storage.reference import PerRowLedger
from airflow_provider_sms.storage.sync_state import ContactSyncState

CAMPAIGNS = ("c1", "ünïcode ✓ campaign")
# Texts the statements must carry through unharmed: a PostgreSQL array literal's quotes, commas,
# braces, backslashes and the word NULL; SQLite's quotes; the empty text; non-ASCII.
ODD_TEXTS = (
    "",
    "NULL",
    "null",
    'a "quoted", {braced} \\ text',
    "it's",
    "Зарезервировано 🚀",
    " padded ",
    "line\nbreak\ttab",
)
RECIPIENTS = [f"+4915100000{i:03d}" for i in range(40)] + [
    f"invalid:{i}:{text}" for i, text in enumerate(ODD_TEXTS)
]
START = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


class Clock:
    """One moment for both implementations' statements of a step, then the next: the tables can
    be compared timestamps and all, and no test reads the wall clock."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def tick(self) -> None:
        self.now += timedelta(milliseconds=1)


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(ledger_module, "utcnow", clock)
    return clock


@pytest.fixture
def pair(sql_conn_id):
    """The set-based ledger and the per-row reference, as two tables of one database."""
    ledgers = (
        MessageLedger(sql_conn_id, "set_ledger", gateway="smstools", sms_conn_id="smstools_default"),
        PerRowLedger(sql_conn_id, "ref_ledger", gateway="smstools", sms_conn_id="smstools_default"),
    )
    for ledger in ledgers:
        ledger.ensure_table()
    yield ledgers
    for ledger in ledgers:
        ledger.close()


def _contents(ledger: MessageLedger) -> list[tuple]:
    names = ", ".join(name for name, _ in COLUMNS)
    return ledger.query(f"SELECT {names} FROM {ledger.quoted} ORDER BY campaign_key, recipient")


def _text(rng: random.Random) -> str | None:
    return rng.choice([None, None, "h1", "h2", *ODD_TEXTS])


def _some(rng: random.Random, *, duplicates: bool) -> list[str]:
    chosen = rng.sample(RECIPIENTS, rng.randint(0, 20))
    if duplicates and chosen and rng.random() < 0.3:
        chosen += rng.sample(chosen, rng.randint(1, len(chosen)))
        rng.shuffle(chosen)
    return chosen


def _step(rng: random.Random) -> tuple[str, str, object]:
    """One random call: ``(method, campaign, argument)``."""
    campaign = rng.choice(CAMPAIGNS)
    kind = rng.choice(("record", "record", "record_sending", "claim", "claim", "mark", "mark", "suppress"))
    if kind in ("record", "record_sending"):
        entries = []
        for r in _some(rng, duplicates=True):
            state = (
                PENDING
                if kind == "record_sending"
                else rng.choice([PENDING, PENDING, PENDING, SUPPRESSED, REJECTED])
            )
            entries.append(
                LedgerEntry(
                    r,
                    state,
                    idempotency_key(campaign, r),
                    message_id=rng.choice([None, None, "m-" + r]),
                    body_hash=_text(rng),
                    segments=rng.choice([None, 1, 2, 7]),
                    error=None if state == PENDING else _text(rng),
                    source_row=rng.choice([None, 0, 5, 2**40]),
                )
            )
        return kind, campaign, entries
    if kind == "claim":
        claims = []
        for r in _some(rng, duplicates=True):
            text = rng.choice([None, None, "h-new", *ODD_TEXTS])
            claims.append((r, text, None if text is None else rng.choice([None, 1, 3])))
        return kind, campaign, claims
    if kind == "mark":
        outcomes = [
            SendOutcome(
                r,
                rng.choice([ACCEPTED, ACCEPTED, REJECTED, PENDING, AMBIGUOUS, SENDING]),
                message_id=rng.choice([None, "id-" + r, *ODD_TEXTS]),
                status=rng.choice([None, "queued", "delivered"]),
                raw_status=_text(rng),
                error=_text(rng),
            )
            for r in _some(rng, duplicates=True)
        ]
        return kind, campaign, outcomes
    return (
        kind,
        campaign,
        {r: rng.choice(["opted out", "frequency cap", *ODD_TEXTS]) for r in _some(rng, duplicates=False)},
    )


@pytest.mark.parametrize("seed", range(6))
def test_random_sequences_leave_identical_tables(pair, clock, seed):
    rng = random.Random(seed)
    states_seen: set[str] = set()
    for step in range(60):
        kind, campaign, argument = _step(rng)
        answers = [getattr(ledger, kind)(campaign, argument) for ledger in pair]
        clock.tick()
        assert answers[0] == answers[1], f"step {step}: {kind} answered differently"
        contents = [_contents(ledger) for ledger in pair]
        assert contents[0] == contents[1], f"step {step}: {kind} left different tables"
        states_seen.update(row[8] for row in contents[0])
    # The sequences reached the conflicts they are meant to: rows of every state met again.
    assert states_seen == set(STATES)


def test_record_sending_writes_what_record_then_claim_write_and_leaves_rows_already_there(pair, clock):
    """Rows recorded straight as ``sending`` equal, column by column, rows recorded ``pending`` and
    claimed in the same moment; of 5,000 (past SQLite's variable limit) the rows an earlier try left,
    in any state, are neither changed nor returned as claimed."""
    phones = [f"+4915400{i:05d}" for i in range(5_000)]
    earlier = phones[::9]
    entries = [
        LedgerEntry(
            p, PENDING, idempotency_key("c1", p), body_hash=f"h{i % 3}", segments=1 + i % 2, source_row=i
        )
        for i, p in enumerate(phones)
    ]
    set_based, reference = pair
    for ledger in pair:
        ledger.record("c1", [LedgerEntry(p, PENDING, "k", body_hash="old") for p in earlier])
        ledger.mark("c1", [SendOutcome(p, ACCEPTED, "m" + p) for p in earlier[:100]])
        ledger.record("c2", entries[:50])  # the same recipients in another campaign
    clock.tick()
    since, claimed = set_based.record_sending("c1", entries)
    reference.record("c1", entries)  # the two steps record_sending stands for, in one moment
    since_ref, claimed_ref = reference.claim(
        "c1", [(e.recipient, None, None) for e in entries if e.recipient not in set(earlier)]
    )
    assert since == since_ref == clock.now
    assert claimed == claimed_ref == set(phones) - set(earlier)
    assert _contents(set_based) == _contents(reference)
    rows = {row[1]: row for row in _contents(set_based) if row[0] == "c1"}
    assert {rows[p][8] for p in claimed} == {SENDING}
    assert {rows[p][13] for p in claimed} == {1}  # attempts
    assert (
        rows[earlier[0]][8] == ACCEPTED and rows[earlier[-1]][8] == PENDING and rows[earlier[-1]][6] == "old"
    )
    # Asked again, nothing is inserted and nothing claimed: another try holds every row.
    clock.tick()
    assert set_based.record_sending("c1", entries)[1] == set()
    assert reference.record_sending("c1", entries)[1] == set()
    assert _contents(set_based) == _contents(reference)


def test_a_batch_past_sqlites_variable_limit_and_a_rerun_with_earlier_rows(pair, clock):
    """A batch of 5,000 (more rows than one SQLite statement binds), recorded over rows an earlier
    try left in every state; claimed while another campaign holds the same recipients."""
    phones = [f"+4915200{i:05d}" for i in range(5_000)]
    earlier = phones[::7]
    for ledger in pair:
        ledger.record("c2", [LedgerEntry(p, PENDING, "k") for p in phones[:100]])
        ledger.record("c1", [LedgerEntry(p, PENDING, "k", body_hash="old", segments=1) for p in earlier])
        ledger.claim("c1", [(p, None, None) for p in earlier[:300]])
        ledger.mark("c1", [SendOutcome(p, ACCEPTED, "m" + p) for p in earlier[:200]])
        ledger.suppress("c1", {p: "opted out" for p in earlier[300:400]})
    clock.tick()
    answers = []
    for ledger in pair:
        inserted = ledger.record(
            "c1", [LedgerEntry(p, PENDING, "k", body_hash="new", segments=2) for p in phones]
        )
        _, claimed = ledger.claim("c1", [(p, "newer" if i % 2 else None, 3) for i, p in enumerate(phones)])
        marked = ledger.mark("c1", [SendOutcome(p, REJECTED, error="é") for p in phones[::3]])
        answers.append((inserted, sorted(claimed), marked))
    assert answers[0] == answers[1]
    assert answers[0][0] == 5_000 - len(earlier)
    assert len(answers[0][1]) == 5_000 - 400  # neither sent, sending nor suppressed rows are claimed again
    assert _contents(pair[0]) == _contents(pair[1])


class _Counting:
    """A DB-API connection whose cursors count the statements they run."""

    def __init__(self, conn, seen: list[str]) -> None:
        self._conn, self._seen = conn, seen

    def __getattr__(self, name):
        return getattr(self._conn, name)

    def cursor(self):
        return _CountingCursor(self._conn.cursor(), self._seen)


class _CountingCursor:
    def __init__(self, cursor, seen: list[str]) -> None:
        self._cursor, self._seen = cursor, seen

    def __getattr__(self, name):
        return getattr(self._cursor, name)

    def execute(self, sql, params=()):
        self._seen.append(sql)
        return self._cursor.execute(sql, params)

    def executemany(self, sql, rows):
        rows = list(rows)
        self._seen.extend([sql] * len(rows))
        return self._cursor.executemany(sql, rows)


@pytest.mark.parametrize("size", [2, 1_000])
def test_each_batch_change_is_one_statement(sql_conn_id, size):
    ledger = MessageLedger(sql_conn_id, "one_statement")
    ledger.ensure_table()
    seen: list[str] = []
    ledger._conn = _Counting(ledger.conn, seen)
    phones = [f"+4915300{i:05d}" for i in range(size)]

    def statements(call) -> int:
        seen.clear()
        call()
        # SQLite's explicit BEGIN and the row count it is asked for are no data statements.
        return len([s for s in seen if s not in ("SELECT changes()",)])

    try:
        assert statements(lambda: ledger.record("c", [LedgerEntry(p, PENDING, "k") for p in phones])) == 1
        new = [LedgerEntry(p, PENDING, "k", body_hash="h", segments=1) for p in phones]
        assert statements(lambda: ledger.record_sending("s", new)) == 1
        assert statements(lambda: ledger.claim("c", [(p, None, None) for p in phones[: size // 2]])) == 1
        assert statements(lambda: ledger.claim("c", [(p, "h", 2) for p in phones[size // 2 :]])) == 1
        assert statements(lambda: ledger.mark("c", [SendOutcome(p, ACCEPTED, "m") for p in phones])) == 1
        ledger.record("d", [LedgerEntry(p, PENDING, "k") for p in phones])
        assert statements(lambda: ledger.suppress("d", {p: "opted out" for p in phones})) == 1
    finally:
        ledger._conn = ledger._conn._conn
        ledger.close()


def test_a_batch_in_several_sqlite_pieces_is_one_transaction(sql_conn_id):
    """A batch SQLite writes in two statements (past its variable limit) is committed whole or not
    at all: the second piece failing rolls the first back (PostgreSQL: one statement anyway)."""
    ledger = MessageLedger(sql_conn_id, "atomic")
    ledger.ensure_table()
    entries = [LedgerEntry(f"+4915400{i:05d}", PENDING, "k") for i in range(6_000)]
    entries[5_500] = LedgerEntry("+4915499999999", PENDING, None)  # NOT NULL: this piece fails
    try:
        with pytest.raises(Exception, match=r"(?i)null"):
            ledger.record("c", entries)
        assert ledger.counts("c") == {}
        assert ledger.record("c", entries[:10]) == 10  # the connection is usable again
    finally:
        ledger.close()


class _PerRowSyncState(ContactSyncState):
    """The sync state with its per-row statements (the fallback for an SQLite older than 3.33)."""

    set_based = False


@pytest.mark.parametrize("seed", range(3))
def test_sync_state_saves_and_removes_as_its_per_row_statements_do(sql_conn_id, monkeypatch, seed):
    clock = Clock()
    monkeypatch.setattr(sync_state_module, "utcnow", clock)
    tables = (
        ContactSyncState(sql_conn_id, "set_state", gateway="smstools"),
        _PerRowSyncState(sql_conn_id, "ref_state", gateway="smstools"),
    )
    rng = random.Random(seed)
    keys = [f"k{i}" for i in range(30)] + list(ODD_TEXTS)
    try:
        for table in tables:
            table.ensure_table()
        for step in range(40):
            list_id = rng.choice(["L1", "L2"])
            if rng.random() < 0.7:
                rows = [
                    (k, rng.choice([None, "id-" + k]), rng.choice([None, "+49151", *ODD_TEXTS]), _text(rng))
                    for k in rng.sample(keys, rng.randint(0, 15))
                ]
                rows += rng.sample(
                    rows, min(len(rows), rng.randint(0, 3))
                )  # a key given twice: the last counts
                name = rng.choice([None, "list one", "Ünï"])
                answers = [t.save(list_id, rows, f"run-{step}", list_name=name) for t in tables]
            else:
                gone = rng.sample(keys, rng.randint(0, 10))
                answers = [t.remove(list_id, gone) for t in tables]
            clock.tick()
            assert answers[0] == answers[1], f"step {step}"
            contents = [
                t.query(f"SELECT * FROM {t.quoted} ORDER BY gateway, list_id, contact_key") for t in tables
            ]
            assert contents[0] == contents[1], f"step {step}"
    finally:
        for table in tables:
            table.close()
