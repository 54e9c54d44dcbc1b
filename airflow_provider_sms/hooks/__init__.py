"""Gateway hooks; :func:`get_gateway_hook` picks one from a connection's type."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import BaseHook

from airflow_provider_sms.get_provider_info import CONNECTION_TYPES

if TYPE_CHECKING:
    from airflow_provider_sms.hooks.base import SmsGatewayHook

# The one registry of gateways: the connection types the provider declares to Airflow.
HOOKS = {c["connection-type"]: c["hook-class-name"] for c in CONNECTION_TYPES}


def _hook_for(sms_conn_id: str, conn_type: str) -> SmsGatewayHook:
    from airflow.sdk.module_loading import import_string

    if conn_type not in HOOKS:
        raise ValueError(
            f"connection {sms_conn_id!r} has type {conn_type!r}; SMS connections are of type "
            + ", ".join(sorted(HOOKS))
        )
    return import_string(HOOKS[conn_type])(sms_conn_id)


def get_gateway_hook(sms_conn_id: str) -> SmsGatewayHook:
    """The hook for the gateway behind ``sms_conn_id``, chosen from the connection's type,
    so one DAG can switch gateways by connection id."""
    return _hook_for(sms_conn_id, BaseHook.get_connection(sms_conn_id).conn_type)


async def aget_gateway_hook(sms_conn_id: str) -> SmsGatewayHook:
    """Async :func:`get_gateway_hook`: the connection is read with the async API (for triggers)."""
    return _hook_for(sms_conn_id, (await BaseHook.aget_connection(sms_conn_id)).conn_type)
