"""The replies engine where the sandbox cannot go: a gateway listing replies without a readable time,
from a sender id, and an opt-out list without dates (a Smstools API answered by requests-mock, the
tables on SQLite); and the sandbox's simulated replies read by the provider's keyword classifier."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from airflow_provider_sms.campaign.keywords import ReplyIntent, classify_reply
from airflow_provider_sms.campaign.replies import ReplyIntake
from airflow_provider_sms.hooks.smstools import SmstoolsHook
from airflow_provider_sms.sandbox import replies as sandbox_replies
from airflow_provider_sms.storage.ledger import MessageLedger
from airflow_provider_sms.storage.opt_outs import OptOutTable
from airflow_provider_sms.storage.table import get_sql_hook
from tests.support.replies import sent

SMSTOOLS = "https://smstools.example.test/v1"
TIMED, UNTIMED, RETURNING, LISTED = "+4915112345601", "+4915112345602", "+4915112345603", "+4915112345604"
INBOX = [
    {"ID": 1, "sender": TIMED[1:], "message": "STOP", "date": "2026-05-29 17:21:27"},
    {"ID": 2, "sender": UNTIMED[1:], "message": "Stop please", "date": "0000-00-00 00:00:00"},
    {"ID": 3, "sender": RETURNING[1:], "message": "START", "date": "yesterday"},
    {"ID": 4, "sender": "ACME", "message": "STOP", "date": "2026-05-29 17:30:00"},  # a sender id
    {"ID": 5, "sender": TIMED[1:], "message": "stop start", "date": "2026-05-29 18:00:00"},
]
OPT_OUT_LIST = [
    {"phone": TIMED[1:]},  # undated, but the table already holds it as opted out: its date stays
    {"phone": LISTED[1:]},  # undated and new: opted out from the run that finds it
]


@pytest.fixture
def hook(monkeypatch, requests_mock) -> SmstoolsHook:
    monkeypatch.setenv("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
    conn = {
        "conn_type": "smstools",
        "host": "https://smstools.example.test",
        "login": "id",
        "password": "pw-0123",
    }
    monkeypatch.setenv("AIRFLOW_CONN_SMSTOOLS_TEST", json.dumps(conn))
    inbox = {"total": len(INBOX), "shown": len(INBOX), "page": 1, "limit": 2000, "messages": INBOX}
    requests_mock.get(f"{SMSTOOLS}/message/inbox", json=inbox)
    requests_mock.get(f"{SMSTOOLS}/optouts/list", json={"total": 2, "optouts": OPT_OUT_LIST})
    return SmstoolsHook("smstools_test")


def intake(hook: SmstoolsHook, sql_conn_id: str) -> ReplyIntake:
    return ReplyIntake(hook, conn_id="smstools_test", replies_conn_id=sql_conn_id)


def test_replies_without_a_time_or_a_phone_and_an_undated_list(hook, sqlite_conn_id):
    before = datetime.now(timezone.utc)
    done = intake(hook, sqlite_conn_id).run().as_dict()
    after = datetime.now(timezone.utc)

    assert done["read"] == done["new"] == 5
    assert done["by_intent"] == {"stop": 3, "start": 1, "none": 0, "ambiguous": 1}
    # TIMED, UNTIMED (a STOP counts from when it was read) and LISTED; RETURNING's START is not
    # applied (no time to order it by), nor is the STOP from a sender id
    assert (done["opted_out"], done["resubscribed"], done["not_applied"], done["gateway_list"]) == (
        3,
        0,
        2,
        2,
    )
    table = OptOutTable(sqlite_conn_id)
    rows = table.rows([TIMED, UNTIMED, RETURNING, LISTED])
    assert set(rows) == {TIMED, UNTIMED, LISTED}
    assert rows[TIMED]["source"] == "reply" and rows[TIMED]["since"].year == 2026
    assert rows[UNTIMED]["source"] == "reply" and before <= rows[UNTIMED]["since"] <= after
    assert rows[LISTED]["source"] == "gateway list" and before <= rows[LISTED]["since"] <= after
    reasons = dict(
        get_sql_hook(sqlite_conn_id).get_records('SELECT "message_id", "reason" FROM "sms_replies"')
    )
    assert reasons["3"].endswith(
        "not applied: the gateway gave no time, so its order against a STOP is unknown"
    )
    assert reasons["4"].endswith("not applied: the sender is not a phone number")
    assert "not applied" not in reasons["1"] + reasons["2"] + reasons["5"]

    again = intake(hook, sqlite_conn_id).run().as_dict()
    # from 10 minutes before the newest stored time: reply 5, and the two without a time (kept by the
    # hook whatever since says), each already stored
    assert again["since"] == "2026-05-29T17:50:00+00:00"
    assert (again["read"], again["new"], again["opted_out"], again["not_applied"]) == (3, 0, 0, 0)
    assert table.rows([TIMED, UNTIMED, LISTED]) == rows  # the undated entries keep their first date
    table.close()


@pytest.mark.parametrize("language", sorted(sandbox_replies.STOP_FORMS))
def test_every_stop_the_sandbox_simulates_reads_as_stop_and_its_free_text_as_none(language):
    for text in sandbox_replies.STOP_FORMS[language]:
        assert classify_reply(text).intent is ReplyIntent.STOP, text
        assert sandbox_replies.keyword(text) == sandbox_replies.STOP, text  # and the sandbox's list agrees
    for text in sandbox_replies.TEXT_FORMS[language]:
        assert classify_reply(text).intent is ReplyIntent.NONE, text
        assert sandbox_replies.keyword(text) is None, text


def test_a_campaign_sent_just_after_a_reply_does_not_take_it(hook, sqlite_conn_id):
    """Reply 1 (17:21:27) answers campaign 1 (17:00), not campaign 2, sent 30 s after it; reply 5
    (18:00) answers campaign 2. The gateway writes times to the second, hence a second's grace."""
    ledger = MessageLedger(sqlite_conn_id, gateway="smstools", sms_conn_id="smstools_test")
    ledger.ensure_table()
    utc = timezone.utc
    first = sent(ledger, "campaign-1", TIMED, datetime(2026, 5, 29, 17, 0, tzinfo=utc))
    second = sent(ledger, "campaign-2", TIMED, datetime(2026, 5, 29, 17, 21, 57, tzinfo=utc))
    sent(ledger, "campaign-3", UNTIMED, datetime(2026, 5, 29, 17, 0, 0, 900_000, tzinfo=utc))
    ledger.close()
    done = intake(hook, sqlite_conn_id).run().as_dict()
    rows = get_sql_hook(sqlite_conn_id).get_records(
        'SELECT "message_id", "campaign_key", "matched_message_id" FROM "sms_replies" ORDER BY 1'
    )
    assert rows == [
        ("1", "campaign-1", first),
        ("2", "campaign-3", f"campaign-3-{UNTIMED}"),  # no time: what was sent before it was read
        ("3", None, None),
        ("4", None, None),  # a sender id: no number to look up
        ("5", "campaign-2", second),
    ]
    assert done["matched"] == 3


def test_a_run_that_dies_while_recording_opt_outs_leaves_no_stop_behind(hook, sqlite_conn_id, monkeypatch):
    real_record = OptOutTable.record

    def dies(self, events):
        raise ConnectionError("the opt-out database went away")

    monkeypatch.setattr(OptOutTable, "record", dies)
    with pytest.raises(ConnectionError):
        intake(hook, sqlite_conn_id).run()
    monkeypatch.setattr(OptOutTable, "record", real_record)

    # Nothing was stored with its STOP unrecorded: the next run finds the replies new and records them.
    done = intake(hook, sqlite_conn_id).run().as_dict()
    assert done["new"] == 5
    assert OptOutTable(sqlite_conn_id).opted_out() == {TIMED, UNTIMED, LISTED}
