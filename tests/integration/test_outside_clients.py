"""A Smstools client this project did not write, pointed at the sandbox gateway.

``smstools-api-client`` (PyPI, import name ``smstools``) is a community client generated with
OpenAPI Generator from an independent description of the Smstools API; its models are strict pydantic
models, so every answer the sandbox gives is checked field by field against what that description
says the real service answers. Version 0.0.9 is pinned in the ``test`` extra: 0.0.10 went back to
pydantic 1, which Airflow 3 cannot install beside it.

Where the client's reading of an answer fails on one of the sandbox's known differences from the
real service (issue 17: Smstools ids as strings, ``unsubscribed`` as a boolean, voice/send without
gender or language), the check is marked xfail with that reason; everything else must pass.
"""

from __future__ import annotations

import importlib
import os

import pytest

pytestmark = pytest.mark.integration

if os.environ.get("CI"):  # CI installs the `test` extra: a missing client there is a failure, not a skip
    smstools = importlib.import_module("smstools")
else:
    smstools = pytest.importorskip("smstools", reason="smstools-api-client (the `test` extra) not installed")

GATEWAY = "smstools"
SENDER = "Shop"
PHONE = "31612345678"


@pytest.fixture
def api(sandbox):
    configuration = smstools.Configuration(host=sandbox.url)  # its paths carry /v1 themselves
    configuration.api_key = {
        "clientId": "sandbox-client-id",
        "clientSecret": "sandbox-client-secret-0123456789",
    }
    with smstools.ApiClient(configuration) as client:
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

    later = api.send_text_message(
        smstools.SendTextMessageRequest(
            message="later", sender=SENDER, to="31612345679", date="2030-01-01 10:00"
        )
    )
    outbox = api.get_outbox()
    assert outbox.total == 1
    [scheduled] = outbox.messages
    assert (scheduled.messageid, scheduled.to, scheduled.var_date) == (
        later.messageid,
        "31612345679",
        "2030-01-01 10:00",
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


@pytest.mark.xfail(
    reason="issue 17: the sandbox answers Smstools contact ids and groupid as integers and unsubscribed "
    "as 0/1; the client reads ID/groupid as strings and unsubscribed as a boolean",
    raises=ValueError,  # pydantic's ValidationError
)
def test_list_contacts(sandbox, api):
    [group_id] = api.create_group(
        group_info_create_request=smstools.GroupInfoCreateRequest(name="Outside")
    ).id
    [contact_id] = api.create_contact(
        smstools.ContactInfoCreateRequest(
            phone=PHONE, firstname="Ann", groupid=str(group_id), unsubscribed=True
        )
    ).id
    listed = api.list_contacts()
    [contact] = listed.contacts
    assert (contact.id, contact.groupid, contact.phone) == (str(contact_id), str(group_id), PHONE)
    assert contact.unsubscribed is True


@pytest.mark.xfail(
    reason="issue 17: the sandbox answers Smstools message-log ids (ID) as integers; the client reads them as strings",
    raises=ValueError,  # pydantic's ValidationError
)
def test_message_log(sandbox, api):
    sent = api.send_text_message(smstools.SendTextMessageRequest(message="logged", sender=SENDER, to=PHONE))
    [logged] = api.get_history().messages
    assert (logged.message_id, logged.to, logged.message) == (sent.messageid, PHONE, "logged")
    assert logged.status == "queued"


@pytest.mark.xfail(
    reason="issue 17: the sandbox's voice/send requires gender and language; the client sends language only when given",
    raises=smstools.ApiException,
)
def test_voice_without_language(sandbox, api):
    sent = api.send_voice_message(
        smstools.SendVoiceMessageRequest(message="Hello", to=PHONE, gender="Female")
    )
    [received] = sandbox.messages(GATEWAY)
    assert (received["id"], received["type"], received["body"]) == (sent.messageid, "voice", "Hello")
