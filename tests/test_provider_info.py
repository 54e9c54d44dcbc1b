from __future__ import annotations

import re
from importlib.metadata import distribution, entry_points

import pytest

from airflow_provider_sms.get_provider_info import get_provider_info

GATEWAYS = {
    "smstools": {"sender_id", "timezone"},
    "smsgateway24": {"device_id", "sim", "timezone"},
    "textboost": {"sender_id", "api_prefix", "timezone"},
}
COMMON = {"default_region", "timeout", "max_attempts", "max_requests_per_second", "batch_size"}


def _entry_point_info() -> dict:
    (ep,) = [
        ep
        for ep in entry_points(group="apache_airflow_provider")
        if ep.value.startswith("airflow_provider_sms")
    ]
    return ep.load()()


def test_provider_info_loads_through_the_entry_point():
    info = _entry_point_info()
    assert info == get_provider_info()
    assert info["package-name"] == "airflow-provider-sms"


def test_package_name_is_the_normalised_distribution_name():
    dist_name = distribution("airflow-provider-sms").metadata["Name"]
    assert get_provider_info()["package-name"] == re.sub(r"[-_.]+", "-", dist_name).lower()


@pytest.mark.parametrize("conn_type", sorted(GATEWAYS))
def test_each_connection_type_declares_its_form(conn_type):
    (declared,) = [c for c in get_provider_info()["connection-types"] if c["connection-type"] == conn_type]
    assert set(declared["conn-fields"]) == GATEWAYS[conn_type] | COMMON
    for name, spec in declared["conn-fields"].items():
        assert spec["label"], name
        assert "null" in spec["schema"]["type"], f"{name} must be optional"
    behaviour = declared["ui-field-behaviour"]
    assert {"schema", "port"} <= set(behaviour["hidden-fields"])
    assert behaviour["relabeling"]["password"]
    module, _, _cls = declared["hook-class-name"].rpartition(".")
    assert module == f"airflow_provider_sms.hooks.{conn_type}"


def test_airflow_sees_the_connection_forms():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert "airflow-provider-sms" in manager.providers
    behaviours = manager.field_behaviours
    assert behaviours["smsgateway24"]["relabeling"]["login"] == "Account email"
    assert "login" in behaviours["textboost"]["hidden_fields"]
    widgets = manager.connection_form_widgets
    for conn_type, fields in GATEWAYS.items():
        for field in fields | COMMON:
            assert f"extra__{conn_type}__{field}" in widgets


@pytest.mark.parametrize(
    ("conn_type", "hook_class"),
    [("smstools", "SmstoolsHook"), ("smsgateway24", "SmsGateway24Hook"), ("textboost", "TextBoostHook")],
)
def test_airflow_resolves_each_connection_type_to_its_hook(conn_type, hook_class):
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    hook = ProvidersManagerTaskRuntime().hooks[conn_type]
    assert hook is not None
    assert hook.hook_class_name == f"airflow_provider_sms.hooks.{conn_type}.{hook_class}"
    assert hook.connection_id_attribute_name == "sms_conn_id"
    assert hook.connection_testable  # the UI's Test button calls test_connection()


def test_every_module_named_in_provider_info_imports():
    import importlib

    info = get_provider_info()
    for section in ("hooks", "operators", "sensors", "triggers"):
        for entry in info[section]:
            for module in entry["python-modules"]:
                importlib.import_module(module)
    for path in info["notifications"]:
        module, _, name = path.rpartition(".")
        assert getattr(importlib.import_module(module), name)
