"""``sms-sandbox`` / ``python -m airflow_provider_sms.sandbox``: serve the sandbox gateway."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Sequence

from airflow_provider_sms.sandbox.config import SandboxConfig
from airflow_provider_sms.sandbox.testing import URL_LINE_PREFIX

DEFAULT_PORT = 8025


def build_parser() -> argparse.ArgumentParser:
    defaults = SandboxConfig()
    parser = argparse.ArgumentParser(
        prog="sms-sandbox",
        description="Local SMS gateway speaking the Smstools, SmsGateway24 and TextBoost APIs on one port.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"0 picks a free port (default {DEFAULT_PORT})"
    )
    parser.add_argument("--delivery-seconds", type=float, default=defaults.delivery_seconds)
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of the fault sequence")
    parser.add_argument(
        "--state", dest="state_file", metavar="FILE", help="keep the state in this SQLite file"
    )
    parser.add_argument(
        "--token-ttl", type=float, default=defaults.token_ttl, help="SmsGateway24 token lifetime"
    )
    parser.add_argument(
        "--balance", type=float, default=defaults.balance, help="starting credits / SMS units"
    )
    parser.add_argument("--frozen-clock", action="store_true", help="time moves only via /_sandbox/advance")
    parser.add_argument(
        "--reply-rate",
        type=float,
        default=defaults.reply_rate,
        help="share of recipients who reply to their first delivered SMS (0 turns replies off; "
        f"default {defaults.reply_rate:g})",
    )
    parser.add_argument(
        "--reply-seconds",
        type=float,
        default=defaults.reply_seconds,
        help=f"a reply arrives within this many seconds of delivery (default {defaults.reply_seconds:g})",
    )
    parser.add_argument("--save-interval", type=float, default=defaults.save_interval)
    parser.add_argument(
        "--timezone",
        default=defaults.timezone,
        help="the accounts' timezone: schedule and date fields are in it (default UTC)",
    )
    smstools = parser.add_argument_group("Smstools")
    smstools.add_argument(
        "--smstools-validate-at-submission",
        action=argparse.BooleanOptionalAction,
        default=defaults.smstools_validate_at_submission,
        help="refuse (error 103) a number that is not valid when it is sent; default off, as the real "
        "service: a possible but invalid number is accepted and fails at delivery",
    )
    smstools.add_argument(
        "--smstools-id-style",
        choices=["numbers", "strings"],
        default=defaults.smstools_id_style,
        help="answer ids as integers and flags as 0/1 (numbers, default) or ids as strings and flags "
        "as true/false (strings)",
    )
    smstools.add_argument("--smstools-id-salt", help="salt of the messageids (default: random per start)")
    parser.add_argument(
        "--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"]
    )
    faults = parser.add_argument_group("faults (also settable at run time: POST /_sandbox/faults)")
    faults.add_argument("--rate-429", type=float, default=0.0, help="share of requests answered 429")
    faults.add_argument("--retry-after", type=float, default=1, help="Retry-After seconds on 429")
    faults.add_argument("--rate-500", type=float, default=0.0)
    faults.add_argument("--rate-503", type=float, default=0.0)
    faults.add_argument("--latency-ms", type=float, default=0, help="added to every gateway request")
    faults.add_argument(
        "--commit-then-drop", type=float, default=0.0, help="share of sends stored, then dropped"
    )
    faults.add_argument("--fault-paths", help="comma-separated path substrings that faults are limited to")
    accounts = parser.add_argument_group("credentials")
    for name in (
        "smstools_client_id",
        "smstools_client_secret",
        "smsgateway24_email",
        "smsgateway24_password",
        "textboost_token",
    ):
        accounts.add_argument("--" + name.replace("_", "-"), default=getattr(defaults, name))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the flags, print the URL and credentials, and serve until SIGINT/SIGTERM."""
    args = vars(build_parser().parse_args(argv))
    host, port, log_level = args.pop("host"), args.pop("port"), args.pop("log_level")
    try:
        config = SandboxConfig.from_options(**args)
    except ValueError as exc:
        print(f"sms-sandbox: {exc}", file=sys.stderr)
        return 2

    from airflow_provider_sms.sandbox.app import create_app
    from airflow_provider_sms.sandbox.server import base_url, bind_socket, build_server

    sock = bind_socket(host, port)
    url = base_url(sock)
    server = build_server(create_app(config), sock, log_level=log_level)
    print(config.describe(url))
    print(f"{URL_LINE_PREFIX}{url}", flush=True)  # machine-readable: start_sandbox_process reads it
    # uvicorn shuts down gracefully (saving the state file), then re-raises the signal it caught;
    # these handlers turn that into a normal exit instead of a death by signal or a traceback.
    signal.signal(signal.SIGTERM, _exit_normally)
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock])
    return 0


def _exit_normally(signum: int, frame: object) -> None:
    raise SystemExit(0)


if __name__ == "__main__":
    sys.exit(main())
