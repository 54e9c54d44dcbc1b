"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point.

Connection forms are declared here as data (``conn-fields``, ``ui-field-behaviour``); Airflow 3.2+
ignores form methods on hooks.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_sms import __version__

PACKAGE_NAME = "airflow-provider-sms"
INTEGRATION = "SMS gateways"


def _field(label: str, kind: str, description: str, **schema: Any) -> dict[str, Any]:
    return {"label": label, "schema": {"type": [kind, "null"], **schema}, "description": description}


# Extras every gateway understands (read by hooks/base.py).
_COMMON_FIELDS = {
    "default_region": _field(
        "Default region",
        "string",
        "ISO country code (e.g. DE, BR) used to read phone numbers written without +country code.",
    ),
    "timeout": _field(
        "Timeout (s)", "number", "Read timeout in seconds (connect timeout: 10 s).", default=30
    ),
    "max_attempts": _field(
        "Max attempts",
        "integer",
        "Attempts per request on 429/5xx/connection errors (1 = no retry).",
        default=5,
    ),
    "max_requests_per_second": _field(
        "Max requests per second", "number", "Client-side rate limit for every call to this gateway."
    ),
    "batch_size": _field(
        "Batch size", "integer", "Messages or contacts per request (at most the gateway's)."
    ),
}


def _connection_type(
    conn_type: str,
    hook: str,
    name: str,
    fields: dict[str, Any],
    hidden: list[str],
    relabeling: dict[str, str],
    placeholders: dict[str, str],
) -> dict[str, Any]:
    return {
        "connection-type": conn_type,
        "hook-class-name": f"airflow_provider_sms.hooks.{conn_type}.{hook}",
        "hook-name": name,
        "conn-fields": {**fields, **_COMMON_FIELDS},
        "ui-field-behaviour": {
            "hidden-fields": hidden,
            "relabeling": relabeling,
            "placeholders": placeholders,
        },
    }


CONNECTION_TYPES = [
    _connection_type(
        "smstools",
        "SmstoolsHook",
        "Smstools (smsgatewayapi.com)",
        fields={
            "sender_id": _field(
                "Sender", "string", "Default sender: a number (up to 14 digits) or a name (up to 11 letters)."
            ),
            "timezone": _field(
                "Timezone", "string", "Timezone of schedule and logging dates (the account's).", default="UTC"
            ),
        },
        hidden=["schema", "port", "extra"],
        relabeling={"login": "Client ID", "password": "Client secret", "host": "Base URL"},
        placeholders={"host": "https://api.smsgatewayapi.com", "default_region": "DE"},
    ),
    _connection_type(
        "smsgateway24",
        "SmsGateway24Hook",
        "SmsGateway24 (Android phone gateway)",
        fields={
            "device_id": _field("Device ID", "integer", "The phone that sends (see getalldevices)."),
            "sim": _field(
                "SIM slot",
                "integer",
                "0 or 1 for SMS; 2/3 WhatsApp Business/personal; 4/5 RCS.",
                default=0,
                enum=[0, 1, 2, 3, 4, 5, None],
            ),
            "timezone": _field("Timezone", "string", "Timezone of dates sent to the gateway.", default="UTC"),
        },
        hidden=["schema", "port", "extra"],
        relabeling={"login": "Account email", "password": "Account password", "host": "Base URL"},
        placeholders={"host": "https://smsgateway24.com/getdata/", "timezone": "Europe/Berlin"},
    ),
    _connection_type(
        "textboost",
        "TextBoostHook",
        "TextBoost SMS",
        fields={
            "sender_id": _field("Sender ID", "string", "Default sender: a number or up to 11 letters."),
            "api_prefix": _field(
                "API prefix", "string", "/api/v3 (default) or /api/http.", default="/api/v3"
            ),
            "timezone": _field(
                "Timezone", "string", "Timezone of schedule_time sent to the gateway.", default="UTC"
            ),
        },
        hidden=["schema", "port", "login", "extra"],
        relabeling={"password": "API token", "host": "Base URL (reseller domain)"},
        placeholders={"host": "https://www.textboostsms.com"},
    ),
]


def _option(description: str, kind: str, default: str, example: str | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "version_added": "0.1.0",
        "type": kind,
        "example": example,
        "default": default,
    }


# The [sms] section: where the campaigns page (plugins/) reads; the defaults are the operators'.
CONFIG_OPTIONS: dict[str, dict[str, Any]] = {
    "ledger_conn_id": _option(
        "Airflow SQL connection of the message ledger and the delivery report table (the send "
        "operator's ledger_conn_id).",
        "string",
        "sqlite_default",
        "warehouse",
    ),
    "ledger_table": _option(
        "The message ledger table (the send operator's ledger_table).", "string", "sms_messages"
    ),
    "report_table": _option(
        "The delivery report table, on the same connection (the report operator's report_table).",
        "string",
        "sms_delivery_report",
    ),
    "cost_per_segment": _option(
        "Price of one SMS segment, for the estimated cost of each campaign (empty: no estimate).",
        "float",
        "",
        "0.075",
    ),
}
PLUGIN_CLASS = "airflow_provider_sms.plugins.campaigns.SmsCampaignsPlugin"


def get_provider_info() -> dict[str, Any]:
    """Everything Airflow needs to list the provider and build its connection forms."""
    return {
        "package-name": PACKAGE_NAME,
        "name": "SMS",
        "description": "SMS campaigns from Airflow: Smstools, SmsGateway24 and TextBoost gateways.",
        "versions": [__version__],
        "integrations": [{"integration-name": INTEGRATION, "tags": ["service"]}],
        "hooks": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [
                    f"airflow_provider_sms.hooks.{c['connection-type']}" for c in CONNECTION_TYPES
                ],
            }
        ],
        "operators": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [
                    f"airflow_provider_sms.operators.{name}"
                    for name in ("send", "contacts", "newsletter", "report", "replies")
                ],
            }
        ],
        "sensors": [
            {"integration-name": INTEGRATION, "python-modules": ["airflow_provider_sms.sensors.delivery"]}
        ],
        "triggers": [
            {"integration-name": INTEGRATION, "python-modules": ["airflow_provider_sms.triggers.delivery"]}
        ],
        "notifications": ["airflow_provider_sms.notifications.sms.SmsNotifier"],
        "connection-types": CONNECTION_TYPES,
        # Loaded from here with [core] lazy_discover_providers = False; otherwise through the
        # airflow.plugins entry point (pyproject.toml), as the official providers do.
        "plugins": [{"name": "sms_campaigns", "plugin-class": PLUGIN_CLASS}],
        "config": {
            "sms": {
                "description": "The SMS campaigns page in the Airflow UI: where it reads the ledger and "
                "delivery report tables the operators write.",
                "options": CONFIG_OPTIONS,
            }
        },
    }
