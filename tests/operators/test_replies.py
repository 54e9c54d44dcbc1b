"""SmsRepliesOperator end to end: campaigns sent through SmsBulkSendOperator to the sandbox gateway
over HTTP, replies injected and simulated there, the replies, opt-out and ledger tables on SQLite
and PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta

import pendulum
import pytest

from airflow_provider_sms.operators.lineage import ledger_asset
from airflow_provider_sms.operators.replies import SmsRepliesOperator
from airflow_provider_sms.storage.opt_outs import OptOutTable
from airflow_provider_sms.storage.table import get_sql_hook
from tests.support.replies import (
    ALL_IN,
    ledger_ids,
    numbers,
    opt_out_rows,
    read_replies,
    send,
    stored,
)

GATEWAYS = ["smstools", "smsgateway24", "textboost"]


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_a_stop_reply_to_campaign_1_opts_its_number_out_and_names_the_campaign(
    gateway, sandbox, sms_conn_env, sql_conn_id
):
    conn_id = sms_conn_env[gateway]
    (simulated_stop,), (talker,), silent = numbers("stop", 1), numbers("text", 1), numbers(None, 2)
    assert send(conn_id, sql_conn_id, [simulated_stop, talker, *silent], "campaign-1")["accepted"] == 4
    injected = sandbox.inject_reply(gateway, silent[0], "Stop!")
    sandbox.advance(ALL_IN)  # the simulated replies arrive 60-600 s after delivery

    summary = read_replies(conn_id, sql_conn_id)

    assert {k: summary[k] for k in ("read", "new", "by_intent", "matched", "opted_out", "resubscribed")} == {
        "read": 3,
        "new": 3,
        "by_intent": {"stop": 2, "start": 0, "none": 1, "ambiguous": 0},
        "matched": 3,
        "opted_out": 2,
        "resubscribed": 0,
    }
    assert summary["gateway_list"] == (2 if gateway == "smstools" else None)  # Smstools lists them too
    replies = stored(sql_conn_id)
    assert set(replies) == {simulated_stop, talker, silent[0]}  # silent[1] wrote nothing
    sent_ids = ledger_ids(sql_conn_id, "campaign-1")
    for sender, row in replies.items():
        assert (row["campaign_key"], row["matched_message_id"]) == ("campaign-1", sent_ids[sender])
        assert (row["gateway"], row["conn_id"]) == (gateway, conn_id)
    assert replies[silent[0]]["message_id"] == str(injected["id"])
    assert replies[silent[0]]["intent"] == "stop" and replies[talker]["intent"] == "none"
    opted = opt_out_rows(sql_conn_id, [simulated_stop, talker, silent[0]])
    assert set(opted) == {simulated_stop, silent[0]}
    row = opted[silent[0]]
    assert (row["opted_out"], row["source"], row["gateway"], row["source_reply_id"], row["keyword"]) == (
        True,
        "reply",
        gateway,
        str(injected["id"]),
        "stop",
    )
    assert row["since"] == replies[silent[0]]["received_at"]

    # Re-running reads the same replies again (from the newest less the overlap) and changes nothing.
    again = read_replies(conn_id, sql_conn_id)
    assert (again["read"], again["new"], again["opted_out"], again["matched"]) == (3, 0, 0, 0)
    assert stored(sql_conn_id) == replies
    assert opt_out_rows(sql_conn_id, [simulated_stop, silent[0]]) == opted  # not one event more


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_start_resubscribes_and_an_ambiguous_reply_is_kept_for_a_person(
    gateway, sandbox, sms_conn_env, sqlite_conn_id
):
    conn_id = sms_conn_env[gateway]
    quitter, unsure = numbers(None, 2)
    send(conn_id, sqlite_conn_id, [quitter, unsure], "campaign-1")
    sandbox.inject_reply(gateway, quitter, "ARRÊT")
    sandbox.inject_reply(gateway, unsure, "please stop texting me")
    first = read_replies(conn_id, sqlite_conn_id)
    assert (first["opted_out"], first["by_intent"]["ambiguous"]) == (1, 1)
    assert set(opt_out_rows(sqlite_conn_id, [quitter, unsure])) == {quitter}
    row = stored(sqlite_conn_id)[unsure]
    assert (row["intent"], row["keyword"]) == ("ambiguous", "stop")
    assert "follows other words" in row["reason"]

    sandbox.advance(3600)
    start = sandbox.inject_reply(gateway, quitter, "START")
    second = read_replies(conn_id, sqlite_conn_id)
    assert (second["new"], second["opted_out"], second["resubscribed"]) == (1, 0, 1)
    back = opt_out_rows(sqlite_conn_id, [quitter])[quitter]
    assert (back["opted_out"], back["source_reply_id"], back["keyword"]) == (False, str(start["id"]), "start")
    third = read_replies(conn_id, sqlite_conn_id)
    assert (third["new"], third["opted_out"], third["resubscribed"]) == (0, 0, 0)


def test_the_run_starts_at_the_newest_stored_reply_less_the_overlap(sandbox, sms_conn_env, sqlite_conn_id):
    conn_id = sms_conn_env["textboost"]
    first = read_replies(conn_id, sqlite_conn_id)
    assert (first["since"], first["read"]) == (None, 0)  # nothing stored yet: everything listed
    sandbox.inject_reply("textboost", "+4917612345001", "Who is this?")
    sandbox.advance(7200)
    newest = sandbox.inject_reply("textboost", "+4917612345002", "Thanks")
    second = read_replies(conn_id, sqlite_conn_id)
    assert second["new"] == 2
    third = read_replies(conn_id, sqlite_conn_id, overlap=timedelta(minutes=30))
    since = pendulum.parse(newest["received_at"]) - timedelta(minutes=30)
    assert pendulum.parse(third["since"]) == since
    assert (third["read"], third["new"]) == (1, 0)  # the reply two hours before is not read again
    # an explicit since reads from there, whatever is stored
    assert read_replies(conn_id, sqlite_conn_id, since="2000-01-01T00:00:00Z")["read"] == 2


def test_the_smstools_opt_out_list_reaches_the_table_when_the_reply_is_not_read(
    sandbox, sms_conn_env, sqlite_conn_id
):
    conn_id = sms_conn_env["smstools"]
    (number,) = numbers(None, 1)
    reply = sandbox.inject_reply("smstools", number, "STOPP")
    sandbox.advance(3600)
    later = pendulum.parse(sandbox.health()["now"]).isoformat()

    summary = read_replies(conn_id, sqlite_conn_id, since=later)
    assert (summary["read"], summary["gateway_list"], summary["opted_out"]) == (0, 1, 1)
    row = opt_out_rows(sqlite_conn_id, [number])[number]
    assert (row["opted_out"], row["source"], row["source_reply_id"]) == (True, "gateway list", None)
    assert row["since"] == pendulum.parse(reply["received_at"]).replace(microsecond=0)

    # Reading the reply afterwards: the same instant, so the list's row stays as it is.
    everything = read_replies(conn_id, sqlite_conn_id, since="2000-01-01T00:00:00Z")
    assert (everything["new"], everything["opted_out"]) == (1, 0)
    assert opt_out_rows(sqlite_conn_id, [number])[number] == row
    # Without the list, only replies are read.
    off = read_replies(conn_id, sqlite_conn_id, read_gateway_opt_outs=False)
    assert off["gateway_list"] is None


def test_without_an_opt_out_table_replies_are_stored_and_nobody_is_opted_out(
    sandbox, sms_conn_env, sqlite_conn_id
):
    conn_id = sms_conn_env["smsgateway24"]
    sandbox.inject_reply("smsgateway24", "+4917612345001", "STOP")
    summary = read_replies(conn_id, sqlite_conn_id, opt_out_table=None, ledger_table=None)
    assert (summary["new"], summary["by_intent"]["stop"], summary["opted_out"]) == (1, 1, 0)
    assert summary["opt_out_table"] is None
    assert not OptOutTable(sqlite_conn_id).exists()
    assert stored(sqlite_conn_id)["+4917612345001"]["campaign_key"] is None


def test_outlets_template_fields_and_a_summary_without_secrets(sandbox, sms_conn_env, sqlite_conn_id):
    op = SmsRepliesOperator(
        task_id="replies",
        sms_conn_id=sms_conn_env["smstools"],
        replies_conn_id=sqlite_conn_id,
        opt_out_conn_id="optouts_db",
    )
    assert op.outlets == [
        ledger_asset(sqlite_conn_id, "sms_replies"),
        ledger_asset("optouts_db", "sms_opt_outs"),
    ]
    assert "since" in op.template_fields
    no_opt_outs = SmsRepliesOperator(task_id="r", sms_conn_id="x", opt_out_table=None)
    assert no_opt_outs.outlets == [ledger_asset("sqlite_default", "sms_replies")]
    with pytest.raises(ValueError, match="invalid table name"):
        SmsRepliesOperator(task_id="r", sms_conn_id="x", replies_table="replies; DROP TABLE x")
    sandbox.inject_reply("smstools", "+4917612345001", "STOP")
    summary = read_replies(sms_conn_env["smstools"], sqlite_conn_id, read_gateway_opt_outs=False)
    text = json.dumps(summary)
    assert "sandbox-client-secret" not in text and "sandbox-client-id" not in text
    assert summary["new"] == 1


def test_openlineage_names_the_inbox_the_ledger_and_the_two_tables(sms_conn_env, postgres_conn_id):
    pytest.importorskip("airflow.providers.openlineage", reason="the OpenLineage provider is not installed")
    op = SmsRepliesOperator(
        task_id="replies", sms_conn_id=sms_conn_env["textboost"], replies_conn_id=postgres_conn_id
    )
    lineage = op.get_openlineage_facets_on_complete(None)
    inputs = {(d.namespace, d.name) for d in lineage.inputs}
    outputs = {(d.namespace, d.name) for d in lineage.outputs}
    namespace = "postgres://127.0.0.1:5432"
    database = get_sql_hook(postgres_conn_id).get_connection(postgres_conn_id).schema
    assert outputs == {
        (namespace, f"{database}.public.sms_replies"),
        (namespace, f"{database}.public.sms_opt_outs"),
    }
    assert (namespace, f"{database}.public.sms_messages") in inputs
    assert any(ns.startswith("textboost://127.0.0.1:") and name == "replies" for ns, name in inputs)
