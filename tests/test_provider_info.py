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


def test_provider_info_is_valid_for_airflows_schema():
    import json
    from pathlib import Path

    import airflow
    import jsonschema

    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_the_campaigns_plugin_is_registered_in_provider_info_and_as_an_entry_point():
    import importlib
    from pathlib import Path

    import tomllib
    from airflow.plugins_manager import AirflowPlugin

    (plugin,) = get_provider_info()["plugins"]
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    entry_point = pyproject["project"]["entry-points"]["airflow.plugins"][plugin["name"]]
    assert entry_point.replace(":", ".") == plugin["plugin-class"]
    module, _, name = plugin["plugin-class"].rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, AirflowPlugin) and cls.name == plugin["name"]
    assert {view["destination"] for view in cls.external_views} == {"nav", "dag_run", "task_instance"}
    (app,) = cls.fastapi_apps
    assert app["url_prefix"] == "/sms-campaigns"
    # Relative hrefs: the UI resolves them against its <base href> (a base_url with a path works).
    assert not any(view["href"].startswith(("/", "http")) for view in cls.external_views)


def test_airflow_reads_the_sms_section_with_the_operators_defaults(monkeypatch):
    from airflow.configuration import conf

    from airflow_provider_sms.operators.report import SmsDeliveryReportOperator
    from airflow_provider_sms.operators.send import SmsBulkSendOperator
    from airflow_provider_sms.plugins.pages import Settings

    send = SmsBulkSendOperator(task_id="s", sms_conn_id="x", audience=[], message="m")
    report = SmsDeliveryReportOperator(task_id="r", sms_conn_id="x")
    assert conf.get("sms", "ledger_conn_id") == send.ledger_conn_id == report.report_conn_id
    assert conf.get("sms", "ledger_table") == send.ledger_table == report.ledger_table
    assert conf.get("sms", "report_table") == report.report_table
    assert Settings.from_conf().cost_per_segment is None
    monkeypatch.setenv("AIRFLOW__SMS__COST_PER_SEGMENT", "0.075")
    monkeypatch.setenv("AIRFLOW__SMS__LEDGER_CONN_ID", "warehouse")
    settings = Settings.from_conf()
    assert (settings.cost_per_segment, settings.ledger_conn_id) == (0.075, "warehouse")
    assert settings.ledger_asset_uri == "sms-table://warehouse/sms_messages"
    monkeypatch.setenv("AIRFLOW__SMS__COST_PER_SEGMENT", "7 cents")
    settings = Settings.from_conf()
    assert settings.cost_per_segment is None
    assert settings.problems == ("[sms] cost_per_segment is not a number ('7 cents'): no cost is estimated.",)
