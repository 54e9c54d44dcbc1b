"""SmsNewsletterOperator against the sandbox: created once per campaign key, with the right lists,
body and schedule, for each gateway; the newsletter table on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import pendulum
import pytest

from airflow_provider_sms.exceptions import SmsAmbiguousSendError, SmsValidationError
from airflow_provider_sms.hooks import get_gateway_hook
from airflow_provider_sms.messages import Contact
from airflow_provider_sms.operators.newsletter import SmsNewsletterOperator
from airflow_provider_sms.storage.ledger import MessageLedger
from airflow_provider_sms.storage.table import get_sql_hook

GATEWAYS = ["smstools", "smsgateway24", "textboost"]
# The sandbox's "METHOD /route" of each gateway's newsletter request (Smstools: its message sends).
CREATES = {"smstools": "message/send", "smsgateway24": "savepaket", "textboost": "/sms/campaign"}
BODY = "Black Friday: 30% off everything until Sunday. Reply STOP to opt out."


def phone(i: int) -> str:
    return f"+49151{20_000_000 + i:08d}"


def context() -> dict:
    return {
        "ti": SimpleNamespace(dag_id="marketing", task_id="newsletter", try_number=1, map_index=-1),
        "logical_date": pendulum.datetime(2026, 11, 23, 8),
        "run_id": "manual__1",
        "ds": "2026-11-23",
        "params": {},
    }


def make_lists(conn_id: str) -> list[str]:
    """Two lists: 0-19 and 15-29 (five numbers in both: each must get one message)."""
    hook = get_gateway_hook(conn_id)
    first, second = hook.create_list("vip"), hook.create_list("newsletter")
    hook.upsert_contacts([Contact(phone(i)) for i in range(20)], first)
    hook.upsert_contacts([Contact(phone(i)) for i in range(15, 30)], second)
    return [first, second]


def send_time() -> pendulum.DateTime:
    return pendulum.now("UTC").add(days=2).replace(hour=18, minute=30, second=0, microsecond=0)


def newsletter(conn_id: str, ledger_conn_id: str, lists: list[str], **kwargs) -> SmsNewsletterOperator:
    return SmsNewsletterOperator(
        task_id="newsletter",
        sms_conn_id=conn_id,
        list_ids=lists,
        body=kwargs.pop("body", BODY),
        title=kwargs.pop("title", "Black Friday"),
        campaign_key=kwargs.pop("campaign_key", "black-friday-2026"),
        ledger_conn_id=ledger_conn_id,
        sender=kwargs.pop("sender", "Shop"),
        **kwargs,
    )


def spy_requests(op: SmsNewsletterOperator) -> list:
    """Record every Call the operator's hook sends."""
    calls, real = [], op.hook.request

    def request(call):
        calls.append(call)
        return real(call)

    op.hook.request = request
    return calls


def creates(sandbox, gateway: str) -> int:
    return sandbox.request_count(gateway=gateway, path_contains=CREATES[gateway])


def newsletters(sandbox, gateway: str) -> int:
    return sandbox.stats()["newsletters"]["by_gateway"][gateway]


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_newsletter_reaches_every_number_of_the_lists_once_at_the_scheduled_time(
    gateway, sandbox, sms_conn_env, sql_conn_id
):
    conn_id = sms_conn_env[gateway]
    lists = make_lists(conn_id)
    when = send_time()
    op = newsletter(conn_id, sql_conn_id, lists, send_at=when.isoformat())
    calls = spy_requests(op)

    summary = op.execute(context())

    assert summary["created"] is True
    assert summary["list_ids"] == lists
    messages = sandbox.messages(gateway=gateway)
    assert sorted(m["recipient"] for m in messages) == [phone(i) for i in range(30)]
    assert all(m["count"] == 1 and m["body"] == BODY for m in messages)
    assert {pendulum.parse(m["send_at"]) for m in messages} == {when}
    if gateway == "smsgateway24":
        [paket] = [c for c in calls if c.path == "savepaket"]
        assert paket.data["tags"] == ",".join(lists)
        assert paket.data["time_to_send"] == when.format("DD.MM.YYYY HH:mm:ss")
        assert paket.data["title"] == "Black Friday"
        assert {str(m["extra"]["paket_id"]) for m in messages} == {summary["newsletter_id"]}
        assert newsletters(sandbox, gateway) == 1
    elif gateway == "textboost":
        [campaign] = [c for c in calls if c.path.endswith("sms/campaign")]
        fields = campaign.json or campaign.data
        assert fields["contact_list_id"] == ",".join(lists)
        assert fields["schedule_time"] == when.format("YYYY-MM-DD HH:mm")
        assert fields["sender_id"] == "Shop"
        assert {m["extra"]["campaign_uid"] for m in messages} == {summary["newsletter_id"]}
        assert newsletters(sandbox, gateway) == 1
    else:  # Smstools: a group send through the ledger, one message per distinct number
        assert summary["newsletter_id"] == "black-friday-2026"
        assert summary["recipients"] == 30
        assert {c.json.get("date") for c in calls if "message/send" in c.path} == {
            when.format("YYYY-MM-DD HH:mm")
        }
        ledger = MessageLedger(sql_conn_id)
        assert ledger.counts("black-friday-2026") == {"accepted": 30}
        ledger.close()
    rows = get_sql_hook(sql_conn_id).get_records(
        "SELECT campaign_key, gateway, list_ids, state, newsletter_id FROM sms_newsletters"
    )
    assert rows == [("black-friday-2026", gateway, ",".join(lists), "created", summary["newsletter_id"])]


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_a_retry_returns_the_recorded_newsletter_without_sending(
    gateway, sandbox, sms_conn_env, sqlite_conn_id
):
    conn_id = sms_conn_env[gateway]
    lists = make_lists(conn_id)
    first = newsletter(conn_id, sqlite_conn_id, lists).execute(context())
    requests_before = sandbox.request_count(gateway=gateway)

    retry = newsletter(conn_id, sqlite_conn_id, lists).execute(context())

    assert sandbox.request_count(gateway=gateway) == requests_before
    assert retry["newsletter_id"] == first["newsletter_id"]
    assert retry["created"] is False
    assert len(sandbox.messages(gateway=gateway)) == 30


def test_smsgateway24_lost_answer_is_found_by_its_messages_not_sent_again(
    sandbox, sms_conn_env, sqlite_conn_id
):
    conn_id = sms_conn_env["smsgateway24"]
    lists = make_lists(conn_id)
    op = newsletter(conn_id, sqlite_conn_id, lists)
    real = op.hook.save_paket
    created = []

    def answer_lost(*args, **kwargs):
        created.append(real(*args, **kwargs))
        raise SmsAmbiguousSendError("read timeout after savepaket", gateway="smsgateway24")

    op.hook.save_paket = answer_lost

    summary = op.execute(context())

    assert summary["newsletter_id"] == created[0]
    assert newsletters(sandbox, "smsgateway24") == 1
    retry = newsletter(conn_id, sqlite_conn_id, lists).execute(context())
    assert retry["newsletter_id"] == created[0]
    assert creates(sandbox, "smsgateway24") == 1


def test_smsgateway24_retry_after_a_crash_mid_request_looks_the_newsletter_up(
    sandbox, sms_conn_env, sqlite_conn_id
):
    """The worker died after savepaket left: the table says "sending", the retry finds the paket."""
    conn_id = sms_conn_env["smsgateway24"]
    lists = make_lists(conn_id)
    op = newsletter(conn_id, sqlite_conn_id, lists)
    real = op.hook.save_paket

    def dies_after_sending(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt("worker killed")

    op.hook.save_paket = dies_after_sending
    with pytest.raises(KeyboardInterrupt):
        op.execute(context())

    summary = newsletter(conn_id, sqlite_conn_id, lists).execute(context())

    assert summary["created"] is True
    assert creates(sandbox, "smsgateway24") == 1
    assert newsletters(sandbox, "smsgateway24") == 1


def test_textboost_lost_answer_fails_as_ambiguous_and_never_sends_twice(
    sandbox, sms_conn_env, sqlite_conn_id
):
    conn_id = sms_conn_env["textboost"]
    lists = make_lists(conn_id)
    sandbox.set_faults(commit_then_drop=1.0, paths=["sms/campaign"])

    with pytest.raises(SmsAmbiguousSendError, match="textboost cannot list newsletters"):
        newsletter(conn_id, sqlite_conn_id, lists).execute(context())
    sandbox.clear_faults()
    with pytest.raises(SmsAmbiguousSendError, match="may or may not have been created"):
        newsletter(conn_id, sqlite_conn_id, lists).execute(context())

    assert creates(sandbox, "textboost") == 1
    assert newsletters(sandbox, "textboost") == 1
    # A new campaign key is a new newsletter.
    other = newsletter(conn_id, sqlite_conn_id, lists, campaign_key="black-friday-2026-b").execute(context())
    assert other["created"] is True
    assert newsletters(sandbox, "textboost") == 2


@pytest.mark.parametrize("gateway", ["smsgateway24", "textboost"])
def test_a_refused_newsletter_is_not_recorded_so_a_fixed_retry_sends_it(
    gateway, sandbox, sms_conn_env, sqlite_conn_id
):
    conn_id = sms_conn_env[gateway]
    lists = make_lists(conn_id)
    with pytest.raises(SmsValidationError):
        newsletter(conn_id, sqlite_conn_id, [*lists, "999999"]).execute(context())
    assert get_sql_hook(sqlite_conn_id).get_records("SELECT * FROM sms_newsletters") == []

    summary = newsletter(conn_id, sqlite_conn_id, lists).execute(context())

    assert summary["created"] is True
    assert newsletters(sandbox, gateway) == 1


def test_a_textboost_newsletter_without_a_sender_fails_before_recording_or_sending(
    sandbox, sms_conn_env, sqlite_conn_id, monkeypatch
):
    lists = make_lists(sms_conn_env["textboost"])
    no_sender = json.loads(os.environ["AIRFLOW_CONN_TEXTBOOST_SANDBOX"])
    no_sender.pop("extra", None)
    monkeypatch.setenv("AIRFLOW_CONN_TEXTBOOST_NO_SENDER", json.dumps(no_sender))
    requests_before = sandbox.request_count(gateway="textboost")

    with pytest.raises(ValueError, match="needs a sender"):
        newsletter("textboost_no_sender", sqlite_conn_id, lists, sender=None).execute(context())

    assert sandbox.request_count(gateway="textboost") == requests_before
    assert newsletter(sms_conn_env["textboost"], sqlite_conn_id, lists).execute(context())["created"] is True


def test_the_same_campaign_key_with_another_body_is_refused(sandbox, sms_conn_env, sqlite_conn_id):
    conn_id = sms_conn_env["smsgateway24"]
    lists = make_lists(conn_id)
    newsletter(conn_id, sqlite_conn_id, lists).execute(context())

    with pytest.raises(ValueError, match="already names a newsletter with another body"):
        newsletter(conn_id, sqlite_conn_id, lists, body="Something else").execute(context())
    assert creates(sandbox, "smsgateway24") == 1


def test_smsgateway24_time_to_send_is_written_in_the_connections_timezone(
    sandbox, sms_conn_env, sqlite_conn_id, monkeypatch
):
    connection = {
        "conn_type": "smsgateway24",
        "host": sandbox.url,
        "login": "sandbox@example.com",
        "password": "sandbox-password-0123",
        "extra": {"device_id": 1001, "timezone": "Europe/Berlin"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_SG24_BERLIN", json.dumps(connection))
    lists = make_lists("sg24_berlin")
    when = send_time()
    op = newsletter("sg24_berlin", sqlite_conn_id, lists, send_at=when)
    calls = spy_requests(op)

    op.execute(context())

    [paket] = [c for c in calls if c.path == "savepaket"]
    assert paket.data["time_to_send"] == when.in_timezone("Europe/Berlin").format("DD.MM.YYYY HH:mm:ss")
    assert paket.data["time_to_send"] != when.format("DD.MM.YYYY HH:mm:ss")  # Berlin time, not UTC


def test_title_body_and_time_are_airflow_templates():
    op = newsletter(
        "smsgateway24_sandbox", "unused", ["1"], body="Sale on {{ ds }}", title="{{ params.name }}"
    )
    op.send_at = "{{ logical_date.add(days=1).isoformat() }}"
    op.campaign_key = "nl-{{ ds_nodash }}"

    op.render_template_fields({**context(), "ds_nodash": "20261123", "params": {"name": "Winter"}})

    assert (op.body, op.title, op.campaign_key) == ("Sale on 2026-11-23", "Winter", "nl-20261123")
    assert op.send_at == "2026-11-24T08:00:00+00:00"
