"""The sandbox as a program: the console script, ``python -m``, ``--state FILE`` across restarts."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys

import requests

from airflow_provider_sms.sandbox.testing import URL_LINE_PREFIX, run_sandbox, start_sandbox_process

from .helpers import NL, SG24_LOGIN, SMSTOOLS_AUTH, TEXTBOOST_AUTH, US


def _start_cli(state_file: str) -> tuple[subprocess.Popen[str], str, str]:
    """The console script (``python -m`` if it is not installed): the process, its URL, its banner."""
    script = shutil.which("sms-sandbox")
    command = [script] if script else [sys.executable, "-m", "airflow_provider_sms.sandbox"]
    process = subprocess.Popen(
        [*command, "--port", "0", "--token-ttl", "600", "--state", state_file],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    banner = []
    for line in process.stdout:  # type: ignore[union-attr]
        banner.append(line)
        if line.startswith(URL_LINE_PREFIX):
            break
    return process, banner[-1].removeprefix(URL_LINE_PREFIX).strip(), "".join(banner)


def test_the_cli_serves_prints_its_credentials_and_its_state_file_survives_a_restart(tmp_path):
    state_file = str(tmp_path / "sandbox.sqlite")
    first, url, banner = _start_cli(state_file)
    try:
        assert url.startswith("http://127.0.0.1:")
        for credential in (
            "sandbox-client-id",
            "sandbox-client-secret-0123456789",
            "sandbox@example.com",
            "sandbox-password-0123",
            "1001, 1002",
            "sandbox-textboost-token-0123456789",
            "token ttl: 600 s",
            state_file,
        ):
            assert credential in banner
        send = {"message": "Kept", "sender": "Shop", "to": NL}
        messageid = requests.post(f"{url}/v1/message/send", json=send, headers=SMSTOOLS_AUTH).json()[
            "messageid"
        ]
        groups = requests.post(f"{url}/v1/groups", json={"name": "G"}, headers=SMSTOOLS_AUTH)
        group = groups.json()["ID"][0]
        requests.post(f"{url}/v1/contact", json={"phone": US, "groupid": group}, headers=SMSTOOLS_AUTH)
        token = requests.post(f"{url}/getdata/gettoken", data=SG24_LOGIN).json()["token"]
        requests.post(f"{url}/_sandbox/advance", json={"seconds": 30})
    finally:
        first.terminate()
        first.wait(15)
    assert first.returncode == 0  # SIGTERM is a normal, graceful stop (the state is saved)

    second = start_sandbox_process(state_file=state_file)  # "python -m airflow_provider_sms.sandbox"
    try:
        (message,) = second.messages()
        assert (message["id"], message["body"], message["status"]) == (messageid, "Kept", "delivered")
        assert [(c["phone"], c["list_id"]) for c in second.contacts()] == [("+" + US, group)]
        assert second.stats()["clock"]["offset_seconds"] == 30
        assert second.stats()["balance"]["smstools"] == 999_999
        devices = requests.post(f"{second.url}/getdata/getalldevices", data={"token": token}).json()
        assert devices["error"] == 0
        again = requests.post(f"{second.url}/v1/message/send", json=send, headers=SMSTOOLS_AUTH).json()
        assert again["messageid"] != messageid
    finally:
        assert second.stop() == 0


def test_the_cli_refuses_bad_fault_settings():
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_sms.sandbox", "--rate-429", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "rate_429 must be between 0 and 1" in result.stderr


def test_a_reset_is_persisted_too(tmp_path):
    state_file = str(tmp_path / "sandbox.sqlite")
    body = {"message": "Before", "sender": "Shop", "to": NL}
    with run_sandbox(state_file=state_file) as server:
        requests.post(f"{server.url}/v1/message/send", json=body, headers=SMSTOOLS_AUTH)
        server.reset()
        requests.post(
            f"{server.url}/v1/message/send", json={**body, "message": "After"}, headers=SMSTOOLS_AUTH
        )
    with run_sandbox(state_file=state_file) as server:
        assert [m["body"] for m in server.messages()] == ["After"]


def test_the_sandbox_imports_neither_airflow_nor_the_provider_it_checks():
    code = (
        "import sys, airflow_provider_sms.sandbox.app, airflow_provider_sms.sandbox.testing; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('airflow', 'airflow_provider_sms')))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    modules = eval(loaded)  # a printed list of module names
    assert "airflow" not in modules
    # Of the provider, only the model the architecture lets it share (no hook, no storage).
    assert {m for m in modules if not m.startswith("airflow_provider_sms.sandbox")} <= {
        "airflow_provider_sms",
        "airflow_provider_sms.messages",
        "airflow_provider_sms.phones",
    }


def _send_everywhere(url: str) -> list[object]:
    """One message, one list and one contact on each gateway; the ids the sandbox answered."""
    token = requests.post(f"{url}/getdata/gettoken", data=SG24_LOGIN).json()["token"]
    smstools = requests.post(
        f"{url}/v1/message/send",
        json={"message": "Hi", "sender": "Shop", "to": [NL, US]},
        headers=SMSTOOLS_AUTH,
    ).json()["messageids"]
    group = requests.post(f"{url}/v1/groups", json={"name": "G"}, headers=SMSTOOLS_AUTH).json()["ID"][0]
    contact = requests.post(f"{url}/v1/contact", json={"phone": NL, "groupid": group}, headers=SMSTOOLS_AUTH)
    sms = {"token": token, "sendto": f"+{NL},+{US}", "body": "Hi", "device_id": 1001}
    sg24 = requests.post(f"{url}/getdata/addsms", data=sms).json()["sms_ids"]
    tag = requests.post(f"{url}/getdata/savetag", data={"token": token, "title": "T"}).json()["tag_id"]
    send = {"recipient": f"{NL},{US}", "sender_id": "Shop", "type": "plain", "message": "Hi"}
    textboost = [
        m["uid"]
        for m in requests.post(f"{url}/api/v3/sms/send", json=send, headers=TEXTBOOST_AUTH).json()["data"]
    ]
    tb_group = requests.post(f"{url}/api/v3/contacts", json={"name": "G"}, headers=TEXTBOOST_AUTH).json()[
        "data"
    ]["uid"]
    return [*smstools, group, contact.json()["ID"][0], *sg24, tag, *textboost, tb_group]


def test_ids_handed_out_before_a_crash_are_never_handed_out_again(tmp_path):
    state_file = str(tmp_path / "sandbox.sqlite")
    # No snapshot within the test: everything after start-up is lost by the crash.
    first = start_sandbox_process(state_file=state_file, save_interval=3600)
    try:
        before = _send_everywhere(first.url)
    finally:
        first.process.kill()  # SIGKILL: no shutdown, no final snapshot
        first.process.wait()
    assert first.process.returncode == -signal.SIGKILL

    second = start_sandbox_process(state_file=state_file, save_interval=3600)
    try:
        assert second.messages() == []  # the acknowledged messages were lost...
        after = _send_everywhere(second.url)
        assert len(set(before)) == len(before) == len(after) == 10
        assert set(before).isdisjoint(after)  # ...but none of their ids names another message now
    finally:
        second.process.kill()
        second.process.wait()

    third = start_sandbox_process(state_file=state_file)  # a second crash in a row, then a clean run
    try:
        assert set(_send_everywhere(third.url)).isdisjoint([*before, *after])
    finally:
        assert third.stop() == 0


def test_every_id_handed_out_is_covered_by_a_reservation_already_in_the_state_file(tmp_path):
    state_file = tmp_path / "sandbox.sqlite"
    with run_sandbox(state_file=str(state_file), save_interval=3600) as server:
        send = {"message": "Hi", "sender": "Shop", "to": [NL] * 1500}  # crosses a block of 1,000 ids
        ids = requests.post(f"{server.url}/v1/message/send", json=send, headers=SMSTOOLS_AUTH).json()
        assert len(set(ids["messageids"])) == 1500
        with sqlite3.connect(state_file) as connection:
            (value,) = connection.execute("SELECT value FROM meta WHERE key = 'id_reserved'").fetchone()
        assert json.loads(value)["message"] >= 1500  # read while the server runs: no snapshot yet
