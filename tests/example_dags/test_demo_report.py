"""The demo's report (scripts/run_example_dags.py) shows the replies, the opt-outs and how many
messages they prevented, read from a warehouse the real operators filled: campaigns and replies
through the sandbox gateway over HTTP, then the replies DAG's next campaign. No ``airflow dags
test`` here: the full demo runs in test_run_example_dags.py."""

from __future__ import annotations

import sqlite3
from collections import Counter
from contextlib import closing
from pathlib import Path

import pytest

from scripts.run_example_dags import REPLIES_DAG, replies_report
from tests.support.replies import ALL_IN, numbers, read_replies, send

pytestmark = pytest.mark.integration
GATEWAYS = ("smstools", "smsgateway24", "textboost")


def test_the_report_shows_replies_opt_outs_and_what_they_prevented(
    sandbox, sms_conn_env, sqlite_conn_id, tmp_path: Path
):
    stoppers, (talker,), silent = numbers("stop", 2), numbers("text", 1), numbers(None, 3)
    audience = [*stoppers, talker, *silent]
    for gateway in GATEWAYS:  # the earlier DAGs: one campaign per gateway
        assert (
            send(sms_conn_env[gateway], sqlite_conn_id, audience, f"sms_campaign.{gateway}")["accepted"] == 6
        )
    sandbox.advance(ALL_IN)  # every simulated reply arrives, at each gateway
    for gateway in GATEWAYS:
        assert read_replies(sms_conn_env[gateway], sqlite_conn_id)["new"] == 3
    # the replies DAG's next campaign (Smstools, as in the example DAG)
    next_campaign = send(sms_conn_env["smstools"], sqlite_conn_id, audience, f"{REPLIES_DAG}.manual__2")
    assert (next_campaign["accepted"], next_campaign["suppressed"]) == (4, 2)
    received = Counter(m["recipient"] for m in sandbox.messages(gateway="smstools"))
    assert [received[p] for p in audience] == [1, 1, 2, 2, 2, 2]  # the STOP senders: campaign 1 only

    with closing(sqlite3.connect(tmp_path / "warehouse.db")) as db:
        lines = replies_report(db)

    assert lines[0].startswith("Replies in sms_replies (the sandbox: 8% of the recipients answer")
    assert lines[1:] == [
        "  smstools      none 1, stop 2 = 3 replies, answering 3 sms_campaign",
        "  smsgateway24  none 1, stop 2 = 3 replies, answering 3 sms_campaign",
        "  textboost     none 1, stop 2 = 3 replies, answering 3 sms_campaign",
        "Opt-out table sms_opt_outs: 2 numbers opted out (reply 2), 0 re-subscribed",
        f"The opt-outs prevented 2 messages of {REPLIES_DAG}'s next campaign "
        "(ledger rows suppressed 'opted out'; suppressed for other reasons: none)",
    ]


def test_no_replies_no_section(sqlite_conn_id, tmp_path: Path):
    with closing(sqlite3.connect(tmp_path / "warehouse.db")) as db:
        assert replies_report(db) == []  # the replies DAG did not run: its tables are not there
