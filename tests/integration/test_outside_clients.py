"""A Smstools client this project did not write, pointed at the sandbox gateway.

``smstools-api-client`` (PyPI, import name ``smstools``) is a community client generated with
OpenAPI Generator from an independent description of the Smstools API; its models are strict pydantic
models, so every answer the sandbox gives is checked field by field against what that description
says the real service answers. Version 0.0.9 is pinned in the ``test`` extra: 0.0.10 went back to
pydantic 1, which Airflow 3 cannot install beside it.

The client itself reads ids as integers in some answers (contact and group creation, the outbox)
and as strings in others (the contact list, the message log), as the real service is reported to
answer them; the listings are therefore read from a sandbox started with
``smstools_id_style="strings"`` (ids as strings, flags as booleans), the rest from the default one.
"""

from __future__ import annotations

import importlib
import os

import pendulum
import pytest

pytestmark = pytest.mark.integration

if os.environ.get("CI"):  # CI installs the `test` extra: a missing client there is a failure, not a skip
    smstools = importlib.import_module("smstools")
else:
    smstools = pytest.importorskip("smstools", reason="smstools-api-client (the `test` extra) not installed")

GATEWAY = "smstools"
SENDER = "Shop"
PHONE = "31612345678"


CREDENTIALS = {"clientId": "sandbox-client-id", "clientSecret": "sandbox-client-secret-0123456789"}


def client_for(url: str):
    configuration = smstools.Configuration(host=url)  # its paths carry /v1 themselves
    configuration.api_key = dict(CREDENTIALS)
    return smstools.ApiClient(configuration)


@pytest.fixture
def api(sandbox):
    with client_for(sandbox.url) as client:
        yield smstools.DefaultApi(client)


@pytest.fixture(scope="module")
def strings_sandbox():
    """A sandbox answering Smstools ids as strings and flags as booleans."""
    from airflow_provider_sms.sandbox.testing import run_sandbox

    with run_sandbox(smstools_id_style="strings") as server:
        yield server


@pytest.fixture
def strings_api(strings_sandbox):
    strings_sandbox.reset()
    with client_for(strings_sandbox.url) as client:
        yield smstools.DefaultApi(client)


def test_send_balance_outbox_group_and_contact(sandbox, api):
    before = api.get_balance()
    assert before.currency == "EUR"

    sent = api.send_text_message(
        smstools.SendTextMessageRequest(
            message="Hello from a client we did not write", sender=SENDER, to=PHONE, reference="outside-1"
        )
    )
    assert isinstance(sent.messageid, str) and sent.messageid
    [received] = sandbox.messages(GATEWAY)
    assert received["id"] == sent.messageid
    assert received["recipient"] == "+" + PHONE
    assert received["body"] == "Hello from a client we did not write"
    assert received["sender"] == SENDER
    assert received["reference"] == "outside-1"
    assert float(api.get_balance().credits) < float(before.credits)

    # A year after the sandbox's today, whatever today is: a fixed date would pass one day, and the
    # message would then go out at once instead of waiting in the outbox.
    next_year = pendulum.parse(sandbox.health()["now"]).add(years=1).format("YYYY-MM-DD") + " 10:00"
    later = api.send_text_message(
        smstools.SendTextMessageRequest(message="later", sender=SENDER, to="31612345679", date=next_year)
    )
    outbox = api.get_outbox()
    assert outbox.total == 1
    [scheduled] = outbox.messages
    assert (scheduled.messageid, scheduled.to, scheduled.var_date) == (
        later.messageid,
        "31612345679",
        next_year,
    )

    [group_id] = api.create_group(
        group_info_create_request=smstools.GroupInfoCreateRequest(name="Outside")
    ).id
    [contact_id] = api.create_contact(
        smstools.ContactInfoCreateRequest(
            phone=PHONE, firstname="Ann", groupid=str(group_id), unsubscribed=False, extra1="VIP"
        )
    ).id
    [stored] = sandbox.contacts(GATEWAY)
    assert (stored["id"], stored["list_id"], stored["phone"]) == (contact_id, group_id, "+" + PHONE)
    assert stored["first_name"] == "Ann"
    assert stored["fields"]["extra1"] == "VIP"
    assert not stored["fields"].get("unsubscribed")


def test_list_contacts(strings_sandbox, strings_api):
    import requests

    headers = {"X-Client-Id": CREDENTIALS["clientId"], "X-Client-Secret": CREDENTIALS["clientSecret"]}
    group = requests.post(
        f"{strings_sandbox.url}/v1/groups", json={"name": "Outside"}, headers=headers, timeout=10
    )
    [group_id] = group.json()["ID"]
    contact = {"phone": PHONE, "firstname": "Ann", "groupid": group_id, "unsubscribed": 1}
    created = requests.post(f"{strings_sandbox.url}/v1/contact", json=contact, headers=headers, timeout=10)
    [contact_id] = created.json()["ID"]
    listed = strings_api.list_contacts()
    [listed_contact] = listed.contacts
    assert (listed_contact.id, listed_contact.groupid, listed_contact.phone) == (
        str(contact_id),
        str(group_id),
        PHONE,
    )
    assert listed_contact.unsubscribed is True


def test_message_log(strings_sandbox, strings_api):
    # Its clock stopped (strings_api's reset restarts it): the message is still queued when the log
    # is read, however slow the machine (with real time it is sent after 1 s).
    strings_sandbox.freeze_clock()
    sent = strings_api.send_text_message(
        smstools.SendTextMessageRequest(message="logged", sender=SENDER, to=PHONE)
    )
    [logged] = strings_api.get_history().messages
    assert (logged.message_id, logged.to, logged.message) == (sent.messageid, PHONE, "logged")
    assert logged.status == "queued"


def test_voice_without_language(sandbox, api):
    sent = api.send_voice_message(
        smstools.SendVoiceMessageRequest(message="Hello", to=PHONE, gender="Female")
    )
    [received] = sandbox.messages(GATEWAY)
    assert (received["id"], received["type"], received["body"]) == (sent.messageid, "voice", "Hello")
