"""ContactSync without a DAG: what a gateway cannot do is read from its declared capabilities."""

from __future__ import annotations

import ast
import inspect

import pytest

from airflow_provider_sms.campaign import contacts
from airflow_provider_sms.campaign.contacts import ContactSync, SyncOptions
from airflow_provider_sms.hooks.base import Capabilities
from airflow_provider_sms.messages import ContactResult

PEOPLE = [{"phone": f"+4915110000{i:03d}", "first_name": f"Name{i}"} for i in range(5)]


class NoListingHook:
    """A gateway that can neither list, delete nor find lists (as SmsGateway24): calling any of
    those would be a probe, and fails the test."""

    gateway = "fake"
    capabilities = Capabilities(list_contacts=False, delete_contacts=False, find_list=False)

    def __init__(self) -> None:
        self.saved: list[tuple[str, str]] = []

    def extra(self, name: str):
        return None

    def create_list(self, name: str) -> str:
        return "tag-1"

    def upsert_contacts(self, batch, list_id):
        self.saved += [(c.phone, list_id) for c in batch]
        return [ContactResult(c, True, contact_id=f"id-{c.phone}") for c in batch]

    def list_contacts(self, list_id):
        raise AssertionError("list_contacts called: capabilities say it cannot")

    def delete_contacts(self, contact_ids, list_id):
        raise AssertionError("delete_contacts called: capabilities say it cannot")

    def find_list(self, name):
        raise AssertionError("find_list called: capabilities say it cannot")


def options(sqlite_conn_id: str, **kwargs) -> SyncOptions:
    kwargs.setdefault("list_name", "customers")
    kwargs.setdefault("create_list_if_missing", True)
    return SyncOptions(data=PEOPLE, state_conn_id=sqlite_conn_id, **kwargs)


def test_a_gateway_that_cannot_list_is_synced_one_contact_per_request_without_probing(sqlite_conn_id):
    hook = NoListingHook()

    first = ContactSync(hook, options(sqlite_conn_id), "run-1").run()
    second = ContactSync(hook, options(sqlite_conn_id), "run-2").run()

    assert (first["list_id"], first["created"], first["reconciled"]) == ("tag-1", 5, False)
    assert (second["list_id"], second["unchanged"], second["created"]) == ("tag-1", 5, 0)
    assert len(hook.saved) == 5


def test_mirror_is_refused_from_the_capabilities_before_anything_is_sent(sqlite_conn_id):
    hook = NoListingHook()

    with pytest.raises(ValueError, match="mode='mirror' deletes contacts, which fake cannot do"):
        ContactSync(hook, options(sqlite_conn_id, mode="mirror"), "run-1").run()

    assert hook.saved == []


def test_options_are_checked_as_the_operator_checks_them():
    with pytest.raises(ValueError, match="exactly one of data"):
        SyncOptions(list_id="1")
    with pytest.raises(ValueError, match="mode must be one of"):
        SyncOptions(data=PEOPLE, list_id="1", mode="replace")


def test_the_engine_imports_no_airflow():
    tree = ast.parse(inspect.getsource(contacts))
    imported = [
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    ]
    assert not [name for name in imported if name and name.split(".")[0] == "airflow"]
