"""The send engine without a DAG: a fake hook, a SQLite ledger."""

from __future__ import annotations

import ast
import logging
import random
from pathlib import Path

import pytest

import airflow_provider_sms.campaign.send as engine_module
from airflow_provider_sms.campaign.send import CampaignSend, SendSettings
from airflow_provider_sms.campaign.templates import MessageTemplate
from airflow_provider_sms.exceptions import SmsConfigurationError, SmsValidationError
from airflow_provider_sms.messages import SendResult
from airflow_provider_sms.storage.ledger import ACCEPTED, PENDING, MessageLedger
from airflow_provider_sms.storage.sources import iter_chunks


class FakeHook:
    gateway = "fake"
    batch_size = 2

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.sent = []

    def send_batch(self, messages):
        if self.refuse:
            raise SmsValidationError("sender refused", gateway=self.gateway)
        self.sent.extend(messages)
        return [SendResult(m, accepted=True, message_id=f"id-{m.to}") for m in messages]

    def find_sent(self, messages, since=None):
        return {}


AUDIENCE = [{"phone": f"+491510000000{n}", "name": name} for n, name in ((1, "Ann"), (2, "Bo"), (3, "Cy"))]


def _run(hook, sqlite_conn_id, key):
    ledger = MessageLedger(sqlite_conn_id, gateway=hook.gateway)
    engine = CampaignSend(
        SendSettings(batch_size=hook.batch_size),
        hook,
        key,
        MessageTemplate("Hi {{ name }}"),
        set(),
        ledger,
        log=logging.getLogger("test"),
    )
    return engine.run(iter_chunks(AUDIENCE))


def _counts(sqlite_conn_id, key):
    ledger = MessageLedger(sqlite_conn_id)
    try:
        return ledger.counts(key)
    finally:
        ledger.close()


def test_the_engine_sends_and_records_without_airflow(sqlite_conn_id):
    hook = FakeHook()
    summary = _run(hook, sqlite_conn_id, "plain")
    assert summary["accepted"] == 3 and summary["rejected"] == 0
    assert [m.body for m in hook.sent] == ["Hi Ann", "Hi Bo", "Hi Cy"]
    assert _counts(sqlite_conn_id, "plain") == {ACCEPTED: 3}
    assert _run(hook, sqlite_conn_id, "plain")["accepted"] == 3 and len(hook.sent) == 3  # nothing twice


def test_a_refused_configuration_is_a_model_error_and_rows_stay_pending(sqlite_conn_id):
    with pytest.raises(SmsConfigurationError, match="stay pending in the ledger") as info:
        _run(FakeHook(refuse=True), sqlite_conn_id, "refused")
    assert isinstance(info.value.__cause__, SmsValidationError)
    assert not issubclass(SmsConfigurationError, SmsValidationError)
    assert _counts(sqlite_conn_id, "refused") == {PENDING: 3}


def test_the_engine_imports_no_airflow():
    tree = ast.parse(Path(engine_module.__file__).read_text())
    imported = [
        alias.name if isinstance(node, ast.Import) else node.module
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in (node.names if isinstance(node, ast.Import) else [None])
    ]
    assert not [name for name in imported if name and name.split(".")[0] == "airflow"]


class IdlessHook(FakeHook):
    """A gateway that accepts without naming ids (SmsGateway24's addalotofsms); its listing names
    them by key, except one it never lists; ``lookup_fails`` makes the listing fail."""

    def __init__(self, lookup_fails: bool = False) -> None:
        super().__init__()
        self.lookup_fails = lookup_fails
        self.lookups = 0

    def send_batch(self, messages):
        self.sent.extend(messages)
        return [SendResult(m, accepted=True) for m in messages]

    def find_sent(self, messages, since=None):
        from airflow_provider_sms.exceptions import SmsTransientError
        from airflow_provider_sms.messages import DeliveryStatus, StatusReport

        self.lookups += 1
        if self.lookup_fails:
            raise SmsTransientError("listing unavailable", gateway=self.gateway)
        return {
            m.key: StatusReport(f"id-{m.to}", DeliveryStatus.QUEUED, "1", recipient=m.to, key=m.key)
            for m in messages
            if not m.to.endswith("3")
        }


def test_the_engine_looks_up_the_ids_a_gateway_did_not_name(sqlite_conn_id):
    hook = IdlessHook()
    summary = _run(hook, sqlite_conn_id, "idless")
    ledger = MessageLedger(sqlite_conn_id)
    rows = ledger.load("idless", [row["phone"] for row in AUDIENCE])
    ledger.close()
    assert hook.lookups == 2  # one per request (batch size 2)
    assert {r: (e.state, e.message_id) for r, e in rows.items()} == {
        "+4915100000001": (ACCEPTED, "id-+4915100000001"),
        "+4915100000002": (ACCEPTED, "id-+4915100000002"),
        "+4915100000003": ("rejected", None),  # accepted, yet the gateway lists no such message
    }
    assert "lists no message with key" in rows["+4915100000003"].error
    assert summary["accepted"] == 2 and len(hook.sent) == 3


def test_ids_that_cannot_be_looked_up_stay_accepted_and_are_never_resent(sqlite_conn_id):
    hook = IdlessHook(lookup_fails=True)
    _run(hook, sqlite_conn_id, "idless")
    assert _counts(sqlite_conn_id, "idless") == {ACCEPTED: 3}
    _run(hook, sqlite_conn_id, "idless")  # a re-run: nothing is pending, nothing goes out again
    assert len(hook.sent) == 3


def _engine(hook, sqlite_conn_id, key):
    return CampaignSend(
        SendSettings(batch_size=hook.batch_size),
        hook,
        key,
        MessageTemplate("Hi {{ name }}"),
        {"+4915100000009"},
        MessageLedger(sqlite_conn_id, gateway=hook.gateway),
        log=logging.getLogger("test"),
    )


def test_duplicates_across_chunks_count_once_and_a_reordered_retry_sends_nothing_twice(sqlite_conn_id):
    rows = [{"phone": f"+49151000000{n:02d}", "name": f"n{n}"} for n in range(12)]
    rows += [{"phone": "0049 151 00000003", "name": "later"}, {"phone": "nonsense", "name": "x"}]
    rows += [{**rows[5], "name": "again"}, {"phone": "+4915100000009", "name": "s"}, {**rows[0]}]
    hook = FakeHook()
    summary = _engine(hook, sqlite_conn_id, "dups").run(iter_chunks(rows, chunk_size=4))
    # 17 rows: 1 unreadable, 4 duplicates (+..03 in another format, +..05, +..09 the suppressed
    # number's second row, +..00), one suppressed; the first row of a recipient is the one sent.
    assert (summary["input"], summary["duplicates"], summary["rejected"]) == (17, 4, 1)
    assert (summary["accepted"], summary["suppressed"]) == (11, 1)
    assert sorted(m.body for m in hook.sent) == sorted(f"Hi n{n}" for n in range(12) if n != 9)
    assert len({m.to for m in hook.sent}) == len(hook.sent)

    random.Random(1).shuffle(rows)  # another try reads the same audience in another order
    again = _engine(hook, sqlite_conn_id, "dups").run(iter_chunks(rows, chunk_size=3))
    assert len(hook.sent) == 11  # nothing sent twice
    assert {k: again[k] for k in ("input", "duplicates", "accepted")} == {
        "input": 17,
        "duplicates": 4,
        "accepted": 11,
    }


def test_long_lived_frozen_freezes_for_the_send_and_gives_back(monkeypatch):
    """The import heap is out of full collections during a send and back afterwards (also when the
    send fails); a collector that is off, or objects frozen by someone else, are left alone."""
    import gc

    from airflow_provider_sms.campaign.send import long_lived_frozen

    # The process may hold objects frozen by something else (Airflow freezes before it forks, and
    # earlier tests of a whole run may have): start from none frozen, and freeze again after.
    frozen_before = gc.get_freeze_count()
    gc.unfreeze()
    try:
        with long_lived_frozen():
            assert gc.get_freeze_count() > 0 and gc.isenabled()
        assert gc.get_freeze_count() == 0
        with pytest.raises(RuntimeError), long_lived_frozen():
            raise RuntimeError("the send failed")
        assert gc.get_freeze_count() == 0
    finally:
        if frozen_before:
            gc.freeze()

    # Leaving alone is told by the calls, not by counts: frozen objects that die (other threads
    # free some) lower the count whoever froze them.
    calls: list[str] = []
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
    monkeypatch.setattr(gc, "unfreeze", lambda: calls.append("unfreeze"))
    monkeypatch.setattr(gc, "isenabled", lambda: True)
    monkeypatch.setattr(gc, "get_freeze_count", lambda: 433_441)  # someone else's freeze
    with long_lived_frozen():
        pass
    assert calls == []
    monkeypatch.setattr(gc, "get_freeze_count", lambda: 0)
    monkeypatch.setattr(gc, "isenabled", lambda: False)  # the collector is off
    with long_lived_frozen():
        pass
    assert calls == []
    monkeypatch.setattr(gc, "isenabled", lambda: True)
    with long_lived_frozen():
        pass
    assert calls == ["freeze", "unfreeze"]


def test_clean_is_the_reference():
    """_clean's shortcut for str, int and bool gives what pd.isna decided for every value."""
    import datetime as dt

    import numpy as np
    import pandas as pd

    from airflow_provider_sms.campaign.send import _clean

    def reference(value):
        if value is None:
            return ""
        try:
            return "" if pd.isna(value) else value
        except (TypeError, ValueError):
            return value

    class Text(str):
        pass

    values = [
        "",
        "nan",
        "NaN",
        "None",
        Text(""),
        0,
        1,
        -1,
        2**80,
        True,
        False,
        0.0,
        float("nan"),
        np.nan,
        np.float64("nan"),
        np.int64(3),
        np.bool_(False),
        pd.NA,
        pd.NaT,
        np.datetime64("NaT"),
        dt.date(2026, 1, 1),
        [1, None],
        {"a": 1},
        (None,),
        b"x",
        1.5,
    ]
    for value in values:
        got, want = _clean(value), reference(value)
        assert type(got) is type(want) and (got is want or got == want), value


class LedgerWatchingHook(FakeHook):
    """Reads the ledger as each request leaves: what the engine committed before it."""

    def __init__(self, conn_id: str, key: str) -> None:
        super().__init__()
        self.conn_id, self.key, self.seen = conn_id, key, []

    def send_batch(self, messages):
        ledger = MessageLedger(self.conn_id)
        try:
            rows = ledger.query(
                f"SELECT recipient, state, attempts FROM {ledger.quoted} WHERE campaign_key = {ledger.ph}",
                [self.key],
            )
        finally:
            ledger.close()
        self.seen.append(({m.to for m in messages}, {r: (state, attempts) for r, state, attempts in rows}))
        return super().send_batch(messages)


def test_a_first_try_records_each_row_as_sending_as_its_batch_leaves(sql_conn_id):
    """A campaign the ledger holds nothing of: a batch's rows are first written as ``sending`` (first
    attempt), committed before the request; the suppressed and rejected rows are recorded with their
    chunk; rows of later batches are not written yet. Each sent row is written twice, not three times."""
    rows = [{"phone": f"+49151000001{n:02d}", "name": f"n{n}"} for n in range(7)]
    rows += [{"phone": "nonsense", "name": "x"}, {"phone": "+4915100000009", "name": "s"}]
    hook = LedgerWatchingHook(sql_conn_id, "fresh")
    hook.batch_size = 1  # 7 requests; the engine claims at most 3 ahead (2 in flight, 1 queued)
    summary = _engine(hook, sql_conn_id, "fresh").run(iter_chunks(rows, chunk_size=100))
    assert summary["accepted"] == 7 and len(hook.sent) == 7
    chunk = {f"+49151000001{n:02d}" for n in range(7)}
    for batch, ledger_rows in hook.seen:
        assert {r: ledger_rows[r] for r in batch} == {r: ("sending", 1) for r in batch}
        assert {state for state, _ in ledger_rows.values()} <= {
            "sending",
            "accepted",
            "suppressed",
            "rejected",
        }
        assert {"+4915100000009": ("suppressed", 0), "invalid:7:nonsense": ("rejected", 0)}.items() <= (
            ledger_rows.items()
        )
    assert len(hook.seen) == 7
    at_first_request = hook.seen[0][1]
    assert len(chunk - at_first_request.keys()) >= 4  # the chunk's later rows not written yet
    assert _counts(sql_conn_id, "fresh") == {ACCEPTED: 7, "rejected": 1, "suppressed": 1}


class FoundHook(FakeHook):
    """A gateway that holds what an earlier, killed try sent."""

    def __init__(self, held: set[str]) -> None:
        super().__init__()
        self.held = held

    def find_sent(self, messages, since=None):
        from airflow_provider_sms.messages import DeliveryStatus, StatusReport

        return {
            m.key: StatusReport(f"id-{m.to}", DeliveryStatus.QUEUED, "queued", recipient=m.to, key=m.key)
            for m in messages
            if m.to in self.held
        }


def test_a_retry_after_a_first_try_killed_mid_chunk_sends_only_what_never_left(sql_conn_id):
    """A first try killed with one batch ``sending`` and the rest of its chunk never written: the
    retry finds the batch at the gateway (not sent again) and records and sends the rest once."""
    from airflow_provider_sms.storage.ledger import LedgerEntry, idempotency_key

    rows = [{"phone": f"+49151000002{n:02d}", "name": f"n{n}"} for n in range(6)]
    phones = [r["phone"] for r in rows]
    ledger = MessageLedger(sql_conn_id, gateway="fake")
    ledger.ensure_table()
    killed = [LedgerEntry(p, PENDING, idempotency_key("killed", p)) for p in phones[:2]]
    assert ledger.record_sending("killed", killed)[1] == set(phones[:2])
    ledger.close()
    hook = FoundHook(held=set(phones[:2]))
    summary = _engine(hook, sql_conn_id, "killed").run(iter_chunks(rows))
    assert sorted(m.to for m in hook.sent) == phones[2:]
    assert summary["accepted"] == 6
    assert _counts(sql_conn_id, "killed") == {ACCEPTED: 6}
