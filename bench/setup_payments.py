"""Benchmark fixtures: patients, pending AzamPay payments and the callback bodies wrk will send.

    python bench/setup_payments.py --out DIR --patients 100 --set warmup:1500 --set c16:20000 --set c64:20000

Patients (BEN-00001...) are created once and reused, so several processes may seed different sets at once.

For every set it creates that many donations (through donor.services.donation_create, exactly as the API
does) each with a pending AzamPay Payment, and writes DIR/<set>.jsonl: one authenticated callback body per
line, in a shuffled order, with ~10% of the lines being exact byte-for-byte repeats of a line a few
positions earlier (a provider retrying while the first delivery may still be in flight).
DIR/<set>.meta.json records how many lines and distinct bodies each file has.
"""

import argparse
import json
import os
import random
import sys
import time
from decimal import Decimal
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import transaction  # noqa: E402

from donor.services import donation_create, donor_for_guest  # noqa: E402
from patients.models import Patient  # noqa: E402
from payments.models import Payment  # noqa: E402

OPERATORS = ("Mpesa", "Airtel", "Tigo", "Halopesa")
BATCH = 500  # donations per transaction while seeding (seeding speed only; the callbacks are not batched)


def create_patients(count: int) -> list[Patient]:
    """`count` TZS patients with goals no run can reach; reuses them when they exist (parallel seeding)."""
    existing = list(Patient.objects.filter(code__startswith="BEN-").order_by("pk"))
    if len(existing) >= count:
        return existing[:count]
    patients = [
        Patient(
            code=f"BEN-{i:05d}",
            name=f"Bench Patient {i}",
            currency="TZS",
            funding_goal=Decimal("9000000000"),  # never reached: no patient flips to fully_funded mid-run
            published=True,
            status=Patient.Status.FUNDING,
        )
        for i in range(len(existing) + 1, count + 1)
    ]
    Patient.objects.bulk_create(patients)
    return list(Patient.objects.filter(code__startswith="BEN-").order_by("pk"))


def create_payments(count: int, patients: list[Patient], rng: random.Random) -> list[dict]:
    """`count` pending payments; returns the callback body (as a dict) for each."""
    bodies = []
    for start in range(0, count, BATCH):
        with transaction.atomic():
            for _ in range(start, min(count, start + BATCH)):
                msisdn = f"2557{rng.randrange(10**8):08d}"
                donor = donor_for_guest(name="Bench Donor", email="donor@example.com", phone=msisdn)
                amount = Decimal(rng.choice((1000, 2000, 5000, 10000, 20000, 50000)))
                donation = donation_create(patient=rng.choice(patients), amount=amount, currency="TZS", donor=donor)
                operator = rng.choice(OPERATORS)
                payment = Payment.objects.create(
                    donation=donation,
                    status=Payment.Status.PENDING,
                    provider="azampay",
                    channel=operator,
                    reference=donation.reference,
                    provider_reference=f"{rng.getrandbits(128):032x}",
                    amount=donation.amount,
                    currency="TZS",
                    msisdn=msisdn,
                )
                bodies.append(
                    {
                        "msisdn": msisdn,
                        "amount": str(int(payment.amount)),
                        "message": "Payment successful",
                        "utilityref": payment.reference,
                        "operator": operator,
                        "reference": payment.provider_reference,
                        "transactionstatus": "success",
                        "submerchantAcc": None,
                        "fspReferenceId": f"MP{rng.getrandbits(40):010X}",
                        "password": settings.PAYMENT_PROVIDERS["azampay"]["callback_password"],
                        # AzamPay echoes what we sent; donor_latency reads the status by the donor's handle.
                        "additionalProperties": {"status_handle": donation.public_token},
                    }
                )
    return bodies


def with_duplicates(bodies: list[str], ratio: float, rng: random.Random) -> list[str]:
    """Insert exact repeats: after line i, with probability `ratio`, repeat a line 1..40 positions back."""
    lines: list[str] = []
    for i, body in enumerate(bodies):
        lines.append(body)
        if i and rng.random() < ratio:
            lines.append(bodies[max(0, i - rng.randint(1, 40))])
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--patients", type=int, default=100)
    parser.add_argument("--set", action="append", required=True, help="name:count, e.g. c16:20000")
    parser.add_argument("--dup-ratio", type=float, default=0.10)
    parser.add_argument("--seed", type=int, default=20251219)
    args = parser.parse_args()
    if not settings.PAYMENT_PROVIDERS["azampay"]["callback_password"]:
        sys.exit("AZAMPAY_CALLBACK_PASSWORD must be set: the benchmark sends authenticated callbacks")

    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    patients = create_patients(args.patients)
    for spec in args.set:
        name, _, count = spec.partition(":")
        # One generator per set (seeded by its name) so sets seeded in parallel never share a provider id.
        rng = random.Random(f"{args.seed}:{name}")
        set_started = time.monotonic()
        bodies = [json.dumps(b, separators=(",", ":")) for b in create_payments(int(count), patients, rng)]
        lines = with_duplicates(bodies, args.dup_ratio, rng)
        (args.out / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
        meta = {"set": name, "payments": len(bodies), "lines": len(lines), "duplicate_lines": len(lines) - len(bodies)}
        (args.out / f"{name}.meta.json").write_text(json.dumps(meta))
        print(
            f"  set {name}: {len(bodies)} pending payments, {len(lines)} callback lines "
            f"({meta['duplicate_lines']} duplicates) in {time.monotonic() - set_started:.1f}s"
        )
    print(f"  seeding took {time.monotonic() - started:.1f}s ({len(patients)} patients)")


if __name__ == "__main__":
    main()
