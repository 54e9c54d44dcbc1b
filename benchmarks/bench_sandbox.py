"""How fast is the sandbox gateway? Requests/s for small requests, messages/s through batch endpoints.

The sandbox runs as a subprocess (``python -m airflow_provider_sms.sandbox``), exactly as the other
benchmarks use it; the load comes from aiohttp clients in separate processes, so the client's own
CPU cost is kept apart from the server's (on a small machine they still share the cores).

    python benchmarks/bench_sandbox.py                      # defaults: 5 s per small endpoint, 100k messages
    python benchmarks/bench_sandbox.py --seconds 3 --messages 20000 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp

from airflow_provider_sms.sandbox.testing import start_sandbox_process

SMSTOOLS_AUTH = {"X-Client-Id": "sandbox-client-id", "X-Client-Secret": "sandbox-client-secret-0123456789"}
TEXTBOOST_AUTH = {"Authorization": "Bearer sandbox-textboost-token-0123456789", "Accept": "application/json"}
SG24_LOGIN = {"email": "sandbox@example.com", "pass": "sandbox-password-0123"}
JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
GATEWAYS = ("smstools", "smsgateway24", "textboost")


@dataclass(frozen=True)
class Call:
    """One HTTP request, ready to send repeatedly."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes | None = None


def numbers(count: int, offset: int = 0) -> list[str]:
    """Distinct valid Dutch mobile numbers (digits, no "+")."""
    return [f"316{10_000_000 + offset + i}" for i in range(count)]


# ---------------------------------------------------------------------------------------- small requests
async def _hammer(url: str, call: Call, seconds: float, concurrency: int) -> int:
    done = 0
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                async with session.request(
                    call.method, url + call.path, headers=call.headers, data=call.body
                ) as r:
                    await r.read()
                    if r.status != 200:
                        raise RuntimeError(f"{call.path}: HTTP {r.status}")
                done += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done


def _hammer_in_process(args: tuple[str, Call, float, int]) -> int:
    return asyncio.run(_hammer(*args))


def requests_per_second(url: str, call: Call, seconds: float, concurrency: int, processes: int) -> float:
    """Requests/s that ``processes`` client processes get through, ``concurrency`` connections each."""
    started = time.perf_counter()
    with ProcessPoolExecutor(processes) as pool:
        total = sum(pool.map(_hammer_in_process, [(url, call, seconds, concurrency)] * processes))
    return total / (time.perf_counter() - started)


# ---------------------------------------------------------------------------------------- batches
def batch_calls(gateway: str, token: str, recipients: list[str], batch: int) -> list[Call]:
    """The requests that send one message to each of ``recipients``, ``batch`` per request."""
    calls = []
    for start in range(0, len(recipients), batch):
        chunk = recipients[start : start + batch]
        if gateway == "smstools":
            body = {"message": "Your order has shipped", "sender": "Shop", "to": chunk}
            calls.append(
                Call("POST", "/v1/message/send", {**SMSTOOLS_AUTH, **JSON}, json.dumps(body).encode())
            )
        elif gateway == "smsgateway24":
            rows = [
                {
                    "sendto": "+" + n,
                    "body": "Your order has shipped",
                    "device_id": 1001,
                    "sim": 0,
                    "customerid": i,
                }
                for i, n in enumerate(chunk, start)
            ]
            form = urlencode({"datajson": json.dumps({"token": token, "smsdata": rows})}).encode()
            calls.append(Call("POST", "/getdata/addalotofsms", FORM, form))
        else:
            body = {"recipient": ",".join(chunk), "sender_id": "Shop", "type": "plain", "message": "Shipped"}
            calls.append(
                Call("POST", "/api/v3/sms/send", {**TEXTBOOST_AUTH, **JSON}, json.dumps(body).encode())
            )
    return calls


async def _send_all(url: str, calls: list[Call], concurrency: int) -> None:
    queue = list(reversed(calls))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def worker() -> None:
            while queue:
                call = queue.pop()
                async with session.request(
                    call.method, url + call.path, headers=call.headers, data=call.body
                ) as r:
                    await r.read()
                    if r.status != 200:
                        raise RuntimeError(f"{call.path}: HTTP {r.status}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def messages_per_second(url: str, calls: list[Call], messages: int, concurrency: int) -> float:
    started = time.perf_counter()
    asyncio.run(_send_all(url, calls, concurrency))
    return messages / (time.perf_counter() - started)


async def _read_pages(url: str, gateway: str, token: str) -> int:
    """Read every message's status back, as a delivery report would; returns how many were read."""
    async with aiohttp.ClientSession() as session:
        if gateway == "smsgateway24":
            async with session.post(url + "/getdata/getallsms", data={"token": token}) as r:
                return (await r.json())["count"]
        read, page = 0, 1
        while True:
            if gateway == "smstools":
                params, headers, path = {"limit": 2000, "page": page}, SMSTOOLS_AUTH, "/v1/message/logging"
            else:
                params, headers, path = {"per_page": 1000, "page": page}, TEXTBOOST_AUTH, "/api/v3/sms"
            async with session.get(url + path, params=params, headers=headers) as r:
                body = await r.json()
            items = body["messages"] if gateway == "smstools" else body["data"]["data"]
            read += len(items)
            if not items or (gateway == "textboost" and body["data"]["next_page_url"] is None):
                return read
            page += 1


# ---------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each small-request run")
    parser.add_argument("--concurrency", type=int, default=32, help="connections per client process")
    parser.add_argument("--processes", type=int, default=max(1, min(4, (os.cpu_count() or 2) // 2)))
    parser.add_argument("--messages", type=int, default=100_000, help="messages per gateway in the batch run")
    parser.add_argument("--batch", type=int, default=1000, help="recipients per batch request")
    parser.add_argument("--batch-concurrency", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=1, help="report the best of N runs (noisy machines)")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    args = parser.parse_args(argv)

    results: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "small": {},
        "batch": {},
    }
    sandbox = start_sandbox_process(delivery_seconds=2)
    try:
        url = sandbox.url
        token = asyncio.run(_token(url))
        uid, sms_id = asyncio.run(_tb_uid(url)), asyncio.run(_sg24_id(url, token))
        single_send = {"message": "Hi", "sender": "Shop", "to": "31612345678"}
        small = {
            "smstools GET /v1/balance": Call("GET", "/v1/balance", SMSTOOLS_AUTH),
            "textboost GET /api/v3/sms/{uid}": Call("GET", f"/api/v3/sms/{uid}", TEXTBOOST_AUTH),
            "smsgateway24 POST /getdata/getsmsstatus": Call(
                "POST", "/getdata/getsmsstatus", FORM, urlencode({"token": token, "sms_id": sms_id}).encode()
            ),
            "smstools POST /v1/message/send (1 recipient)": Call(
                "POST", "/v1/message/send", {**SMSTOOLS_AUTH, **JSON}, json.dumps(single_send).encode()
            ),
        }
        for name, call in small.items():
            rate = max(
                requests_per_second(url, call, args.seconds, args.concurrency, args.processes)
                for _ in range(args.repeat)
            )
            results["small"][name] = round(rate)
            if not args.json:
                print(f"{name:52s} {rate:10,.0f} requests/s", flush=True)

        for gateway in GATEWAYS:
            # cold: numbers the sandbox has never seen (phone validation not cached); warm: the same again.
            offset = (1 + GATEWAYS.index(gateway)) * 10_000_000
            for phase in ("cold", "warm"):
                best = 0.0
                for run in range(args.repeat):
                    recipients = numbers(
                        args.messages, offset + (run * args.messages if phase == "cold" else 0)
                    )
                    calls = batch_calls(gateway, token, recipients, args.batch)
                    sandbox.reset()
                    best = max(best, messages_per_second(url, calls, args.messages, args.batch_concurrency))
                rate = best
                results["batch"][f"{gateway} send ({phase})"] = round(rate)
                if not args.json:
                    print(
                        f"{gateway + ' send, ' + phase + ' numbers':52s} {rate:10,.0f} messages/s", flush=True
                    )
            stored = sandbox.stats()["messages"]["by_gateway"][gateway]["total"]
            if stored != args.messages:
                raise RuntimeError(f"{gateway}: {stored} messages stored, expected {args.messages}")
            started = time.perf_counter()
            read = asyncio.run(_read_pages(url, gateway, token))
            rate = read / (time.perf_counter() - started)
            results["batch"][f"{gateway} status read"] = round(rate)
            if not args.json:
                print(f"{gateway + ' statuses read back (lists)':52s} {rate:10,.0f} messages/s", flush=True)
    finally:
        sandbox.stop()
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


async def _token(url: str) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + "/getdata/gettoken", data=SG24_LOGIN) as r,
    ):
        return (await r.json())["token"]


async def _tb_uid(url: str) -> str:
    body = {"recipient": "31612345678", "sender_id": "Shop", "type": "plain", "message": "Hi"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + "/api/v3/sms/send", json=body, headers=TEXTBOOST_AUTH) as r,
    ):
        return (await r.json())["data"]["uid"]


async def _sg24_id(url: str, token: str) -> int:
    fields = {"token": token, "sendto": "+31612345678", "body": "Hi", "device_id": "1001"}
    async with aiohttp.ClientSession() as session, session.post(url + "/getdata/addsms", data=fields) as r:
        return (await r.json())["sms_id"]


if __name__ == "__main__":
    sys.exit(main())
