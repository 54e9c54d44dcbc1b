"""CPU per message on the hot path of a bulk send: the provider's hooks sending batches and reading
every status back, against the sandbox gateway in its own process. Both sides are measured at once:
the provider as this process's CPU time, the sandbox as its process's (from /proc). No ledger: the
hooks only (``send_batch`` in the hook's batch size, then ``iter_statuses`` over every message).

    python -m benchmarks.hotpath --messages 50000
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from benchmarks.common import GATEWAYS, quiet_airflow, set_gateway_connections


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=50_000, help="messages per gateway")
    parser.add_argument("--gateways", default=",".join(GATEWAYS))
    args = parser.parse_args(argv)
    quiet_airflow()
    from airflow_provider_sms.hooks import get_gateway_hook
    from airflow_provider_sms.messages import OutboundMessage
    from airflow_provider_sms.sandbox.testing import start_sandbox_process

    sandbox = start_sandbox_process(delivery_seconds=2)
    pid = sandbox.process.pid
    try:
        conn_ids = set_gateway_connections(sandbox.url, prefix="hotpath")
        for gateway in args.gateways.split(","):
            offset = 10_000_000 + GATEWAYS.index(gateway) * 1_000_000
            messages = [
                OutboundMessage(
                    to=f"+316{offset + i}", body="Your order has shipped", key=str(i + 1), sender="Shop"
                )
                for i in range(args.messages)
            ]
            sandbox.reset()
            hook = get_gateway_hook(conn_ids[gateway])
            size = hook.batch_size
            sandbox_before, before = process_cpu(pid), time.process_time()
            accepted = 0
            for start in range(0, len(messages), size):
                accepted += sum(r.accepted for r in hook.send_batch(messages[start : start + size]))
            sent, sandbox_sent = time.process_time() - before, process_cpu(pid) - sandbox_before
            if accepted != args.messages:
                raise RuntimeError(f"{gateway}: {accepted} of {args.messages} accepted")
            sandbox.advance(3600)  # every message delivered (replies arrive for 8 % of recipients)
            hook = get_gateway_hook(conn_ids[gateway])  # a fresh token for SmsGateway24
            sandbox_before, before = process_cpu(pid), time.process_time()
            read = sum(1 for _ in hook.iter_statuses())
            listed, sandbox_listed = time.process_time() - before, process_cpu(pid) - sandbox_before
            if read < args.messages:  # SmsGateway24 lists the replies among them
                raise RuntimeError(f"{gateway}: {read} statuses read for {args.messages} messages")
            per = 1e6 / args.messages
            print(
                f"{gateway:13s} send: provider {sent * per:5.1f} µs, sandbox {sandbox_sent * per:5.1f} µs"
                f"   statuses: provider {listed * per:5.1f} µs, sandbox {sandbox_listed * per:5.1f} µs"
                f"   (CPU per message; {read} statuses listed)",
                flush=True,
            )
    finally:
        sandbox.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
