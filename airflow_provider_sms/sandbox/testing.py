"""Run the sandbox from tests and scripts: in a background thread (``run_sandbox``) or as a
subprocess (``start_sandbox_process``), both driven through the same ``SandboxServer`` helpers."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests

URL_LINE_PREFIX = "SMS_SANDBOX_URL="


class SandboxServer:
    """A running sandbox: its base ``url`` and thin helpers for the ``/_sandbox`` admin API."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        # The ASGI app when served from this process (``run_sandbox``), else None: tests compare what
        # the server answers with what its state holds (``app.state.sandbox``).
        self.app: Any = None
        self._session = requests.Session()
        self._session.trust_env = False  # never send local admin calls through a proxy

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._session.request(method, f"{self.url}/_sandbox/{path}", timeout=30, **kwargs)
        response.raise_for_status()
        return response.json()

    def health(self) -> dict[str, Any]:
        return self._call("GET", "health")

    def reset(self) -> None:
        """Forget messages, contacts, lists and counters; restore balances and the clock."""
        self._call("POST", "reset")

    def advance(self, seconds: float) -> dict[str, Any]:
        """Move the sandbox clock forward (deliveries progress accordingly)."""
        return self._call("POST", "advance", json={"seconds": seconds})

    def freeze_clock(self, frozen: bool = True) -> dict[str, Any]:
        """Stop the sandbox clock (time then moves only through ``advance``), or restart it with
        ``frozen=False``; ``reset()`` restores the start-up setting."""
        return self._call("POST", "clock", json={"frozen": frozen})

    def set_timezone(self, timezone: str, gateway: str | None = None) -> dict[str, str]:
        """Set the accounts' timezone (one account's with ``gateway``); ``reset()`` restores it."""
        body = {"timezone": timezone, **({"gateway": gateway} if gateway else {})}
        return self._call("POST", "timezone", json=body)

    def faults(self) -> dict[str, Any]:
        return self._call("GET", "faults")

    def set_faults(self, **settings: Any) -> dict[str, Any]:
        """Replace the fault settings: rate_429, retry_after, rate_500, rate_503, latency_ms,
        commit_then_drop, seed, paths (keys not given take their defaults)."""
        return self._call("POST", "faults", json=settings)

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def messages(self, gateway: str | None = None, **filters: Any) -> list[dict[str, Any]]:
        """Stored messages, each with ``count``: how often its (gateway, recipient, body) arrived."""
        params = {"gateway": gateway, **filters} if gateway else filters
        return self._call("GET", "messages", params=params)

    def contacts(self, gateway: str | None = None) -> list[dict[str, Any]]:
        """Stored contacts, each with ``count``: how often its (gateway, list, phone) arrived."""
        return self._call("GET", "contacts", params={"gateway": gateway} if gateway else None)

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "stats")

    def request_count(self, gateway: str | None = None, path_contains: str | None = None) -> int:
        """Gateway requests received, optionally of one gateway and/or whose
        ``"METHOD /route/template"`` contains ``path_contains``."""
        by_endpoint = self.stats()["requests"]["by_endpoint"]
        return sum(
            count
            for gw, endpoints in by_endpoint.items()
            if gateway in (None, gw)
            for endpoint, count in endpoints.items()
            if path_contains is None or path_contains in endpoint
        )

    def set_balance(self, gateway: str, balance: float) -> dict[str, float]:
        """Set what is left on an account: Smstools credits or TextBoost SMS units (``reset()``
        restores the starting balance)."""
        return self._call("POST", "balance", json={"gateway": gateway, "balance": balance})

    def replies(self, gateway: str | None = None) -> list[dict[str, Any]]:
        """Replies, arrived or not yet (``arrived``), oldest first: ``id`` (the gateway's), ``from``,
        ``to``, ``text``, ``received_at``, ``origin`` (simulated or injected), ``keyword``..."""
        return self._call("GET", "replies", params={"gateway": gateway} if gateway else None)

    def inject_reply(
        self,
        gateway: str,
        sender: str,
        text: str,
        *,
        to: str | int | None = None,
        received_at: str | None = None,
    ) -> dict[str, Any]:
        """Receive ``text`` from ``sender`` at ``gateway`` (now, or at the ISO time ``received_at``);
        returns the reply as :meth:`replies` lists it."""
        body = {"gateway": gateway, "from": sender, "text": text, "to": to, "received_at": received_at}
        return self._call("POST", "replies", json={k: v for k, v in body.items() if v is not None})

    def set_reply_simulation(self, rate: float | None = None, seconds: float | None = None) -> dict[str, Any]:
        """Change the share of recipients who reply and the delay bound (for messages sent from now on);
        ``rate=0`` turns simulated replies off until ``reset()``."""
        body = {"rate": rate, "seconds": seconds}
        return self._call("POST", "reply-simulation", json={k: v for k, v in body.items() if v is not None})

    def expire_tokens(self) -> None:
        """Invalidate every SmsGateway24 token."""
        self._call("POST", "expire-tokens")

    def close(self) -> None:
        self._session.close()

    def wait_ready(self, timeout: float = 15.0, alive: Any = None) -> None:
        """Poll ``/_sandbox/health`` until it answers (``alive()`` returning False aborts early)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.health()
                return
            except requests.RequestException:
                if time.monotonic() > deadline or (alive is not None and not alive()):
                    raise RuntimeError(f"the sandbox at {self.url} did not start") from None
                time.sleep(0.02)


@contextmanager
def run_sandbox(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    delivery_seconds: float = 2.0,
    seed: int = 0,
    state_file: str | None = None,
    **options: Any,
) -> Iterator[SandboxServer]:
    """Serve a sandbox from a background thread of this process; stop it on exit.

    ``options`` are ``SandboxConfig`` fields (``token_ttl``, ``balance``, ``frozen_clock``,
    credentials...) and start-up faults (``rate_429``, ``retry_after``, ``rate_500``, ``rate_503``,
    ``latency_ms``, ``commit_then_drop``, ``fault_paths``).
    """
    # Imported here so that scripts that only start a subprocess never load FastAPI.
    from airflow_provider_sms.sandbox.app import create_app
    from airflow_provider_sms.sandbox.config import SandboxConfig
    from airflow_provider_sms.sandbox.server import base_url, bind_socket, build_server

    config = SandboxConfig.from_options(
        delivery_seconds=delivery_seconds, seed=seed, state_file=state_file, **options
    )
    sock = bind_socket(host, port)
    app = create_app(config)
    server = build_server(app, sock)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="sms-sandbox", daemon=True)
    thread.start()
    sandbox = SandboxServer(base_url(sock))
    sandbox.app = app
    try:
        sandbox.wait_ready(alive=thread.is_alive)
        yield sandbox
    finally:
        sandbox.close()
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


class SandboxProcess(SandboxServer):
    """A sandbox running as ``python -m airflow_provider_sms.sandbox``; ``stop()`` ends it cleanly."""

    def __init__(self, url: str, process: subprocess.Popen[str], output: deque[str]) -> None:
        super().__init__(url)
        self.process = process
        self.output = output  # the last lines it printed (drained by a thread, so it never blocks)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM (graceful: the state file is saved), SIGKILL after ``timeout``; returns the exit code
        (0 after a clean shutdown)."""
        self.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __enter__(self) -> SandboxProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _cli_flags(options: dict[str, Any]) -> list[str]:
    flags = []
    for name, value in options.items():
        if value is None or value is False:
            continue
        flag = "--" + name.replace("_", "-")
        if value is True:
            flags.append(flag)
        else:
            flags += [flag, ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)]
    return flags


def start_sandbox_process(
    port: int = 0,
    *,
    host: str = "127.0.0.1",
    delivery_seconds: float = 2.0,
    seed: int = 0,
    state_file: str | None = None,
    timeout: float = 30.0,
    **options: Any,
) -> SandboxProcess:
    """Start the sandbox CLI as a subprocess and return once it answers.

    ``options`` become CLI flags (``token_ttl=5`` → ``--token-ttl 5``, ``frozen_clock=True`` →
    ``--frozen-clock``). The URL is read from the ``SMS_SANDBOX_URL=...`` line the CLI prints.
    """
    command = [
        sys.executable,
        "-m",
        "airflow_provider_sms.sandbox",
        *_cli_flags({"host": host, "port": port, "delivery_seconds": delivery_seconds, "seed": seed}),
        *_cli_flags({"state": state_file, **options}),
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    output: deque[str] = deque(maxlen=200)
    found = threading.Event()
    url: list[str] = []

    def drain() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line.rstrip("\n"))
            if not found.is_set() and line.startswith(URL_LINE_PREFIX):
                url.append(line[len(URL_LINE_PREFIX) :].strip())
                found.set()
        found.set()  # the process ended: stop waiting

    threading.Thread(target=drain, name="sms-sandbox-output", daemon=True).start()
    if not found.wait(timeout) or not url:
        process.kill()
        process.wait()
        raise RuntimeError("the sandbox process did not start:\n" + "\n".join(output))
    sandbox = SandboxProcess(url[0], process, output)
    try:
        sandbox.wait_ready(timeout, alive=lambda: process.poll() is None)
    except RuntimeError:
        sandbox.stop()
        raise
    return sandbox
