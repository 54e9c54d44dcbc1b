"""The provider as Airflow's CLI sees it, in a fresh AIRFLOW_HOME."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

AIRFLOW = [sys.executable, "-m", "airflow"]


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("airflow_home")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AIRFLOW_CONN_") and k != "AIRFLOW__CORE__UNIT_TEST_MODE"
    }
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(Path(home) / "dags"),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
    )
    subprocess.run([*AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    return env


def airflow(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([*AIRFLOW, *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_providers_list_shows_the_provider(airflow_env):
    assert "airflow-provider-sms" in airflow(airflow_env, "providers", "list")


def test_connections_add_for_each_gateway_type(airflow_env):
    secret = "cli-password-5f2b9c"
    airflow(
        airflow_env,
        "connections",
        "add",
        "my_sms",
        "--conn-type",
        "smsgateway24",
        "--conn-login",
        "a@b.c",
        "--conn-password",
        secret,
        "--conn-extra",
        json.dumps({"device_id": 1576, "sim": 0}),
    )
    airflow(
        airflow_env,
        "connections",
        "add",
        "my_textboost",
        "--conn-type",
        "textboost",
        "--conn-password",
        secret,
    )
    stored = json.loads(airflow(airflow_env, "connections", "get", "my_sms", "-o", "json"))
    assert stored[0]["conn_type"] == "smsgateway24"
    assert stored[0]["login"] == "a@b.c"
    assert str(stored[0]["extra_dejson"]["device_id"]) == "1576"
    hooks = {
        h["connection_type"]: h for h in json.loads(airflow(airflow_env, "providers", "hooks", "-o", "json"))
    }
    assert hooks["smsgateway24"]["class"] == "airflow_provider_sms.hooks.smsgateway24.SmsGateway24Hook"
    assert hooks["smstools"]["package_name"] == hooks["textboost"]["package_name"] == "airflow-provider-sms"
