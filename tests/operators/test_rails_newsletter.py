"""The safety rails on SmsNewsletterOperator, end to end: the sandbox gateway over HTTP, the tables on
SQLite and PostgreSQL. A gateway-side newsletter (SmsGateway24 paket, TextBoost campaign) that would
reach an opted-out or capped number goes through the ledger instead; the budget is checked first."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pendulum
import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_sms.campaign import rails
from airflow_provider_sms.hooks import get_gateway_hook
from airflow_provider_sms.messages import Contact, OptOutEvent
from airflow_provider_sms.operators.contacts import SmsContactSyncOperator
from airflow_provider_sms.operators.newsletter import SmsNewsletterOperator
from airflow_provider_sms.operators.send import SmsBulkSendOperator
from airflow_provider_sms.storage.ledger import MessageLedger
from airflow_provider_sms.storage.opt_outs import OptOutTable

GATEWAYS = ["smstools", "smsgateway24", "textboost"]
NATIVE = {"smstools": "send", "smsgateway24": "package", "textboost": "campaign"}
CREATES = {"smsgateway24": "savepaket", "textboost": "/sms/campaign"}
BODY = "Our spring newsletter is out. Reply STOP to opt out"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def phone(i: int) -> str:
    return f"+49151{50_000_000 + i:08d}"


def context(task_id: str = "newsletter") -> dict:
    return {
        "ti": SimpleNamespace(dag_id="marketing", task_id=task_id, try_number=1, map_index=-1),
        "logical_date": pendulum.datetime(2026, 11, 23, 8),
        "run_id": "manual__1",
        "ds": "2026-11-23",
        "params": {},
    }


def synced_list(conn_id: str, state_conn_id: str, numbers=range(6)) -> str:
    """A list made by the contact sync (its state knows the members, as SmsGateway24 needs)."""
    summary = SmsContactSyncOperator(
        task_id="sync",
        sms_conn_id=conn_id,
        data=[{"phone": phone(i)} for i in numbers],
        list_name="news",
        create_list_if_missing=True,
        state_conn_id=state_conn_id,
    ).execute(context("sync"))
    return summary["list_id"]


def newsletter(conn_id: str, ledger_conn_id: str, list_id: str, **kwargs) -> dict:
    return SmsNewsletterOperator(
        task_id="newsletter",
        sms_conn_id=conn_id,
        list_ids=[list_id],
        body=kwargs.pop("body", BODY),
        campaign_key=kwargs.pop("campaign_key", "spring-news"),
        ledger_conn_id=ledger_conn_id,
        sender="Shop",
        **kwargs,
    ).execute(context())


def opt(conn_id: str, i: int, opted_out: bool = True, at: datetime = T0) -> None:
    table = OptOutTable(conn_id)
    try:
        table.ensure()
        table.record([OptOutEvent(phone(i), opted_out, at, source="reply")])
    finally:
        table.close()


def per_recipient(sandbox, gateway: str) -> Counter:
    return Counter(m["recipient"] for m in sandbox.messages(gateway=gateway))


def creates(sandbox, gateway: str) -> int:
    return sandbox.request_count(gateway=gateway, path_contains=CREATES[gateway]) if gateway in CREATES else 0


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_a_number_that_opted_out_after_the_sync_is_not_reached_by_the_newsletter(
    gateway, sandbox, sms_conn_env, sql_conn_id
):
    conn_id = sms_conn_env[gateway]
    list_id = synced_list(conn_id, sql_conn_id)
    opt(sql_conn_id, 1)  # after the sync: the list still holds it (SmsGateway24 cannot remove it)

    summary = newsletter(conn_id, sql_conn_id, list_id)

    assert per_recipient(sandbox, gateway) == Counter({phone(i): 1 for i in (0, 2, 3, 4, 5)})
    assert summary["via"] == "send" and creates(sandbox, gateway) == 0  # no paket, no campaign
    assert (summary["send"]["accepted"], summary["send"]["suppressed_reasons"]) == (5, {"opted out": 1})
    ledger = MessageLedger(sql_conn_id)
    try:
        assert ledger.suppressed_reasons("spring-news") == {"opted out": 1}
    finally:
        ledger.close()

    # a retry returns the recorded newsletter, sending nothing
    assert newsletter(conn_id, sql_conn_id, list_id)["created"] is False
    assert sum(per_recipient(sandbox, gateway).values()) == 5


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_without_opt_outs_in_the_lists_the_gateway_sends_its_own_newsletter(
    gateway, sandbox, sms_conn_env, sqlite_conn_id
):
    conn_id = sms_conn_env[gateway]
    list_id = synced_list(conn_id, sqlite_conn_id)
    opt(sqlite_conn_id, 99)  # someone opted out, but not in these lists
    summary = newsletter(conn_id, sqlite_conn_id, list_id)
    assert summary["via"] == NATIVE[gateway]
    assert per_recipient(sandbox, gateway) == Counter({phone(i): 1 for i in range(6)})


@pytest.mark.parametrize("gateway", ["smsgateway24", "textboost"])
def test_honour_opt_outs_false_sends_the_gateways_newsletter_to_everyone(
    gateway, sandbox, sms_conn_env, sqlite_conn_id
):
    conn_id = sms_conn_env[gateway]
    list_id = synced_list(conn_id, sqlite_conn_id, range(3))
    opt(sqlite_conn_id, 1)
    # TextBoost: after the sync removed it; put it back by hand as a transactional list might hold it
    if gateway == "textboost":
        get_gateway_hook(conn_id).upsert_contacts([Contact(phone(1))], list_id)
    summary = newsletter(conn_id, sqlite_conn_id, list_id, honour_opt_outs=False)
    assert summary["via"] == NATIVE[gateway] and creates(sandbox, gateway) == 1
    assert phone(1) in per_recipient(sandbox, gateway)


def test_smsgateway24_tag_unknown_to_the_sync_state_fails_when_opt_outs_exist(
    sandbox, sms_conn_env, sqlite_conn_id
):
    conn_id = sms_conn_env["smsgateway24"]
    hook = get_gateway_hook(conn_id)
    tag = hook.create_list("by hand")
    hook.upsert_contacts([Contact(phone(i)) for i in range(3)], tag)
    opt(sqlite_conn_id, 1)
    with pytest.raises(ValueError, match="cannot list the contacts"):
        newsletter(conn_id, sqlite_conn_id, tag)
    assert creates(sandbox, "smsgateway24") == 0 and per_recipient(sandbox, "smsgateway24") == Counter()


def test_a_retry_goes_the_way_the_first_try_went(sandbox, sms_conn_env, sqlite_conn_id):
    """Try 1 goes through the ledger (number 1 opted out) and fails over max_cost, recording the
    audience; number 1 answers START; the retry still goes through the ledger (a paket now would
    double what try 1 may have sent) and reaches number 1 too."""
    conn_id = sms_conn_env["smsgateway24"]
    list_id = synced_list(conn_id, sqlite_conn_id)
    opt(sqlite_conn_id, 1)
    with pytest.raises(AirflowFailException, match="more than max_cost=2"):
        newsletter(conn_id, sqlite_conn_id, list_id, max_cost=2)
    assert per_recipient(sandbox, "smsgateway24") == Counter()
    opt(sqlite_conn_id, 1, opted_out=False, at=T0 + timedelta(days=1))

    summary = newsletter(conn_id, sqlite_conn_id, list_id, max_cost=10)

    assert summary["via"] == "send" and creates(sandbox, "smsgateway24") == 0
    # number 1's row was recorded suppressed by try 1: suppressed rows are final
    assert per_recipient(sandbox, "smsgateway24") == Counter({phone(i): 1 for i in (0, 2, 3, 4, 5)})


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_a_newsletter_over_max_cost_sends_nothing_and_fails_without_retry(
    gateway, sandbox, sms_conn_env, sql_conn_id
):
    conn_id = sms_conn_env[gateway]
    list_id = synced_list(conn_id, sql_conn_id)
    # 6 numbers x 1 segment x 0.5 = 3.0: 1 more than max_cost
    with pytest.raises(AirflowFailException, match=r"would cost 3 .*1 more than max_cost=2"):
        newsletter(conn_id, sql_conn_id, list_id, max_cost=2, cost_per_segment=0.5)
    assert per_recipient(sandbox, gateway) == Counter()
    assert creates(sandbox, gateway) == 0


@pytest.mark.parametrize("gateway", ["smstools", "textboost"])
def test_a_newsletter_over_the_balance_sends_nothing(gateway, sandbox, sms_conn_env, sqlite_conn_id):
    conn_id = sms_conn_env[gateway]
    list_id = synced_list(conn_id, sqlite_conn_id)
    sandbox.set_balance(gateway, 4)
    with pytest.raises(AirflowFailException, match=r"balance has 4 .*left: 2 short"):
        newsletter(conn_id, sqlite_conn_id, list_id, cost_per_segment=1.0)
    assert per_recipient(sandbox, gateway) == Counter()
    assert creates(sandbox, gateway) == 0


def test_a_capped_member_turns_a_textboost_campaign_into_a_ledgered_send(
    sandbox, sms_conn_env, sqlite_conn_id, monkeypatch
):
    conn_id = sms_conn_env["textboost"]
    list_id = synced_list(conn_id, sqlite_conn_id)
    SmsBulkSendOperator(
        task_id="promo",
        sms_conn_id=conn_id,
        audience=[{"phone": phone(2)}, {"phone": phone(3)}],
        message="Promo",
        ledger_conn_id=sqlite_conn_id,
        campaign_key="promo",
    ).execute(context("promo"))
    ledger = MessageLedger(sqlite_conn_id)
    sent = ledger.first_sent_at("promo")
    ledger.close()
    monkeypatch.setattr(rails, "now", lambda: sent + timedelta(days=1))

    summary = newsletter(conn_id, sqlite_conn_id, list_id, max_messages_per_recipient=(1, "7d"))

    assert summary["via"] == "send" and creates(sandbox, "textboost") == 0
    assert summary["send"]["suppressed_reasons"] == {"frequency cap": 2}
    assert per_recipient(sandbox, "textboost") == Counter(
        {phone(0): 1, phone(1): 1, phone(2): 1, phone(3): 1, phone(4): 1, phone(5): 1}
    )  # 2 and 3: the promo only
