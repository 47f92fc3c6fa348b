"""Donor-visible latency at a realistic rate: from a provider's callback to the donor's status page saying so.

    python bench/donor_latency.py --base-url http://127.0.0.1:8099 --bodies DIR/lat.jsonl --rate 20 --duration 20

Against a running site (bench/run.sh starts gunicorn and, for CALLBACK_ACK=stored, the task workers): sends
one authenticated AzamPay success callback every 1/RATE seconds (an open loop: on schedule, whatever the
answers take) through the real webhook, and for each one polls the donor's status API — the
`GET /api/v1.0/donors/donations/{public_token}/status/` the donation page polls (read from our database only;
the refresh endpoint is rate-limited and asks the provider, so it is not used) — every POLL_MS until it reads
"completed". Records, per callback, the time from starting to send it to its answer (ack) and to the first
poll answering "completed" (seen). The resolution of "seen" is the poll interval plus one GET.
Prints one "LATENCY ..." line (milliseconds) and exits 1 if any callback was not acknowledged or never
seen completed within --timeout.
"""

import argparse
import http.client
import json
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from credit_lag import percentile  # bench/ is on sys.path when run as a script

CALLBACK_PATH = "/api/v1.0/donors/payment/azampay/callback/"
STATUS_PATH = "/api/v1.0/donors/donations/{}/status/"


class Probe:
    def __init__(self, base_url: str, poll_s: float, timeout_s: float):
        url = urlsplit(base_url)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.poll_s, self.timeout_s = poll_s, timeout_s
        self.lock = threading.Lock()
        self.acks: list[float] = []
        self.seen: list[float] = []
        self.gets: list[float] = []
        self.slips: list[float] = []
        self.errors: list[str] = []
        self.never_seen = 0
        self.polls = 0

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            headers = {"Content-Type": "application/json", "User-Agent": "donor-latency-bench"}
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def one(self, due: float, body: bytes) -> None:
        sent_body = json.loads(body)
        reference = sent_body["utilityref"]
        # The donor's handle (its public token, echoed in additionalProperties): by reference a guest gets 404.
        handle = (sent_body.get("additionalProperties") or {}).get("status_handle") or reference
        start = time.perf_counter()
        slip = start - due
        try:
            status, answer = self.request("POST", CALLBACK_PATH, body)
        except OSError as exc:
            with self.lock:
                self.errors.append(f"{reference}: {type(exc).__name__}: {exc}")
            return
        ack = time.perf_counter() - start
        if status != 200:
            with self.lock:
                self.errors.append(f"{reference}: HTTP {status} {answer[:120]!r}")
            return
        polls, gets = 0, []
        while True:
            sent = time.perf_counter()
            try:
                status, answer = self.request("GET", STATUS_PATH.format(handle))
                state = json.loads(answer).get("status") if status == 200 else None
            except (OSError, ValueError):
                state = None
            now = time.perf_counter()
            polls += 1
            gets.append(now - sent)
            if state == "completed":
                with self.lock:
                    self.acks.append(ack * 1000)
                    self.seen.append((now - start) * 1000)
                    self.slips.append(slip * 1000)
                    self.gets.extend(g * 1000 for g in gets)
                    self.polls += polls
                return
            if now - start > self.timeout_s:
                with self.lock:
                    self.never_seen += 1
                    self.errors.append(f"{reference}: not completed after {self.timeout_s:.0f}s (last {state!r})")
                    self.polls += polls
                return
            time.sleep(self.poll_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--bodies", required=True, type=Path, help="one callback body per line, no repeats")
    parser.add_argument("--rate", type=float, default=20.0, help="callbacks per second (default 20)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of sending (default 20)")
    parser.add_argument("--poll-ms", type=float, default=100.0, help="status poll interval (default 100 ms)")
    parser.add_argument("--timeout", type=float, default=30.0, help="give up on one callback after (s)")
    parser.add_argument("--label", default="")
    args = parser.parse_args()

    lines = [line.encode() for line in args.bodies.read_text().splitlines() if line]
    count = int(args.rate * args.duration)
    if count > len(lines):
        sys.exit(f"{args.bodies} has {len(lines)} bodies; {count} are needed")
    probe = Probe(args.base_url, args.poll_ms / 1000, args.timeout)
    threads = []
    t0 = time.perf_counter() + 0.2
    for i, body in enumerate(lines[:count]):
        due = t0 + i / args.rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        thread = threading.Thread(target=probe.one, args=(due, body), daemon=True)
        thread.start()
        threads.append(thread)
    deadline = time.perf_counter() + args.timeout + 15
    for thread in threads:
        thread.join(max(0.0, deadline - time.perf_counter()))
    seen, acks = probe.seen, probe.acks
    fields = {
        "label": args.label or "-",
        "rate": f"{args.rate:g}",
        "sent": count,
        "seen_completed": len(seen),
        "errors": len(probe.errors),
        "never_seen": probe.never_seen,
        "ack_p50_ms": f"{percentile(acks, 50):.1f}",
        "ack_p99_ms": f"{percentile(acks, 99):.1f}",
        "seen_p50_ms": f"{percentile(seen, 50):.1f}",
        "seen_p95_ms": f"{percentile(seen, 95):.1f}",
        "seen_p99_ms": f"{percentile(seen, 99):.1f}",
        "seen_max_ms": f"{max(seen, default=0):.1f}",
        "polls_per_callback": f"{probe.polls / max(1, count):.1f}",
        "get_p50_ms": f"{percentile(probe.gets, 50):.1f}",
        "poll_ms": f"{args.poll_ms:g}",
        "send_slip_max_ms": f"{max(probe.slips, default=0):.1f}",
    }
    print("LATENCY " + " ".join(f"{k}={v}" for k, v in fields.items()))
    for error in probe.errors[:10]:
        print(f"  {error}")
    sys.exit(0 if len(seen) == count else 1)


if __name__ == "__main__":
    main()
