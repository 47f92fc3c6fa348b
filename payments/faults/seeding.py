"""Seeding a storm (Django ORM): pending payments and sent payouts in the current database, and the provider
callbacks that settle them, each built by that provider's bodies module (payments/sandbox/<provider>/bodies.py)
as the sandbox builds its own, plus what the sandbox must learn to confirm them by its status queries.
"""

from __future__ import annotations

import json
import random
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from payments.faults.rig import Secrets
from payments.faults.storm import RAILS, Delivery
from payments.sandbox.airtel import bodies as airtel
from payments.sandbox.azampay import bodies as azampay
from payments.sandbox.daraja import bodies as daraja
from payments.sandbox.mtn import bodies as mtn
from payments.sandbox.outcomes import Result

AZAMPAY_PATH = "/api/v1.0/donors/payment/azampay/callback/"
STK_PATH = "/webhooks/mpesa/stkpush/"
C2B_PATH = "/webhooks/paybill/confirmation/{token}/"
B2C_PATH = "/webhooks/mpesa/b2c/result/{token}/"
MTN_PATH = "/webhooks/mtn/collection/{token}/"  # the payment's secret X-Callback-Url; MTN delivers it by PUT
AIRTEL_PATH = "/webhooks/airtel/payment/"  # the one URL set on Airtel's portal
MPESA_SHORTCODE = "174379"  # the sandbox's STK shortcode (the rig gives the site the sandbox's credentials)
HASHED_MSISDN = "hashed msisdn"
MASKED_MSISDN = "masked msisdn"


@dataclass(frozen=True)
class StormPlan:
    azampay: int
    stk: int
    c2b: int
    b2c: int
    mtn: int = 0
    airtel: int = 0
    duplicate_share: float = 0.10
    hashed_msisdn_share: float = 0.75  # C2B confirmations with the 2024+ hashed MSISDN; the rest masked

    @classmethod
    def spread(cls, deliveries: int, **options: float) -> StormPlan:
        """`deliveries` split over the six delivery kinds (RAILS) as evenly as possible."""
        share, extra = divmod(deliveries, len(RAILS))
        counts = [share + (1 if i < extra else 0) for i in range(len(RAILS))]
        return cls(*counts, **options)

    @property
    def total(self) -> int:
        return self.azampay + self.stk + self.c2b + self.b2c + self.mtn + self.airtel


@dataclass(frozen=True)
class Cast:
    """The rows every delivery points at."""

    tzs_patients: list[Any]
    kes_patients: list[Any]
    ugx_patients: list[Any]  # MTN and Airtel (Uganda)
    payout_patient: Any
    maker: Any
    checker: Any


def seed_storm(plan: StormPlan, secrets: Secrets, *, seed: int = 1) -> list[Delivery]:
    """Pending payments and sent payouts in the current database, and the callback bodies that settle them.

    Patients have goals no storm reaches, so none stops accepting donations mid-run. ~duplicate_share of the
    deliveries are marked to be sent twice. MTN and Airtel deliveries carry what their status APIs must answer
    (give the deliveries to FaultRig: its sandbox learns it).
    """
    from django.db import transaction

    rng = random.Random(seed)
    with transaction.atomic():
        cast = _seed_cast(rng)
        deliveries = [_azampay_delivery(cast, secrets, rng) for _ in range(plan.azampay)]
        deliveries += [_stk_delivery(cast, rng) for _ in range(plan.stk)]
        deliveries += [_c2b_delivery(cast, secrets, rng, plan.hashed_msisdn_share) for _ in range(plan.c2b)]
        deliveries += [_b2c_delivery(cast, secrets, rng) for _ in range(plan.b2c)]
        deliveries += [_mtn_delivery(cast, secrets, rng) for _ in range(plan.mtn)]
        deliveries += [_airtel_delivery(cast, secrets, rng) for _ in range(plan.airtel)]
    rng.shuffle(deliveries)
    twice = set(rng.sample(range(len(deliveries)), round(len(deliveries) * plan.duplicate_share)))
    return [replace(delivery, duplicate=i in twice) for i, delivery in enumerate(deliveries)]


GOAL = Decimal("9000000000")  # never reached: nobody becomes fully funded mid-run


def _seed_cast(rng: random.Random) -> Cast:
    from django.contrib.auth import get_user_model

    from patients.models import Patient, TreatmentPartner

    tag = f"{rng.getrandbits(24):06X}"
    partner = TreatmentPartner.objects.create(
        name=f"Fault Hospital {tag}", country="KE", payout_provider="mpesa", payout_msisdn="254708374149"
    )

    def patient(code: str, currency: str) -> Patient:
        return Patient.objects.create(
            code=f"FLT{tag}-{code}",
            name=f"Fault Patient {code}",
            currency=currency,
            funding_goal=GOAL,
            published=True,
            treatment_partner=partner,
        )

    users = get_user_model().objects
    return Cast(
        tzs_patients=[patient(f"TZ{i}", "TZS") for i in range(3)],
        kes_patients=[patient(f"KE{i}", "KES") for i in range(3)],
        ugx_patients=[patient(f"UG{i}", "UGX") for i in range(3)],
        payout_patient=patient("PO", "KES"),
        maker=users.create_user(f"fault-maker-{tag}", is_staff=True),
        checker=users.create_user(f"fault-checker-{tag}", is_staff=True),
    )


def _pending_payment(
    patients: list[Any],
    rng: random.Random,
    *,
    amount: Decimal,
    provider: str,
    channel: str,
    msisdn: str,
    ref: str | None,
    external_id: Callable[[str], str] = str,
    token_digest: str | None = None,
) -> Any:
    from donor.services import donation_create, donor_for_guest
    from payments.models import Payment

    patient = rng.choice(patients)
    donor = donor_for_guest(name="Fault Donor", phone=msisdn)
    donation = donation_create(patient=patient, amount=amount, currency=patient.currency, donor=donor)
    return Payment.objects.create(
        donation=donation,
        reference=donation.reference,
        external_id=external_id(donation.reference),
        provider=provider,
        channel=channel,
        msisdn=msisdn,
        amount=amount,
        currency=patient.currency,
        status=Payment.Status.PENDING,
        provider_reference=ref,
        callback_token_digest=token_digest,
    )


def _learn(**fields: str) -> tuple[tuple[str, str], ...]:
    return tuple(fields.items())


def _azampay_delivery(cast: Cast, secrets: Secrets, rng: random.Random) -> Delivery:
    amount = Decimal(rng.choice((1000, 2500, 5000, 10000, 20000)))
    ref = f"{rng.getrandbits(128):032x}"
    msisdn = f"2557{rng.randrange(10**8):08d}"
    payment = _pending_payment(
        cast.tzs_patients, rng, amount=amount, provider="azampay", channel="Mpesa", msisdn=msisdn, ref=ref
    )
    body = azampay.build_callback(
        transaction_id=ref,
        external_id=payment.reference,
        amount=f"{amount:.0f}",
        msisdn=msisdn,
        operator="Mpesa",
        mnoreference=str(uuid.UUID(int=rng.getrandbits(128))),
        success=True,
        message=azampay.CALLBACK_MESSAGE[Result.SUCCESS],
        password=secrets.azampay_password,
    )
    learn = _learn(provider="azampay", transaction_id=ref, external_id=payment.reference, amount=f"{amount:.0f}",
                   currency="TZS", msisdn=msisdn, mnoreference=body["mnoreference"])  # fmt: skip
    return Delivery("azampay", payment.reference, AZAMPAY_PATH, _bytes(body), amount, learn=learn)


def _stk_delivery(cast: Cast, rng: random.Random) -> Delivery:
    amount = Decimal(rng.choice((50, 100, 250, 500, 1000)))
    checkout = f"ws_CO_{rng.getrandbits(64):020d}"
    msisdn = f"2547{rng.randrange(10**8):08d}"
    payment = _pending_payment(
        cast.kes_patients, rng, amount=amount, provider="mpesa", channel="", msisdn=msisdn, ref=checkout
    )
    code, desc, _ = daraja.RESULT_CODES[Result.SUCCESS]
    body = daraja.build_stk_callback(  # the documented shape (fixtures/mpesa/callback_success_documented.json)
        merchant_request_id=f"{rng.randrange(10**5)}-{rng.randrange(10**8)}-1",
        checkout_request_id=checkout,
        result_code=code,
        result_desc=desc,
        amount=int(amount),
        receipt=_mpesa_id(rng),
        phone=msisdn,
        transaction_date=_stamp(),
        with_balance=False,
    )
    learn = _learn(provider="mpesa", transaction_id=checkout, external_id=payment.reference,
                   amount=str(int(amount)), currency="KES", msisdn=msisdn)  # fmt: skip
    return Delivery("stk", payment.reference, STK_PATH, _bytes(body), amount, needle=checkout, learn=learn)


def _c2b_delivery(cast: Cast, secrets: Secrets, rng: random.Random, hashed_share: float) -> Delivery:
    amount = Decimal(rng.choice((100, 150, 500, 1000, 2000)))
    trans_id = _mpesa_id(rng)
    hashed = rng.random() < hashed_share
    phone = f"2547{rng.randrange(10**8):08d}"
    body = daraja.c2b_body(  # Daraja's C2B v2 confirmation
        trans_id=trans_id,
        amount=f"{amount:.2f}",
        shortcode=MPESA_SHORTCODE,
        bill_ref=rng.choice(cast.kes_patients).code,
        msisdn=phone if hashed else f"2547 ***** {phone[-3:]}",
        hash_msisdn=hashed,
        trans_time=_stamp(),
        first_name="NICHOLAS",
        last_name="",
    )
    variant = HASHED_MSISDN if hashed else MASKED_MSISDN
    path = C2B_PATH.format(token=secrets.c2b_token)
    return Delivery("c2b", trans_id, path, _bytes(body), amount, variant=variant)


def _b2c_delivery(cast: Cast, secrets: Secrets, rng: random.Random) -> Delivery:
    from django.utils import timezone

    from donor.services import donation_complete, donation_create, donor_for_guest
    from payments.models import Payment, Payout

    amount = Decimal(rng.choice((1000, 5000, 20000)))
    # The money it pays out was received first (verify_ledger proves no patient is paid out more than that).
    gift = donation_create(
        patient=cast.payout_patient, amount=amount, currency="KES", donor=donor_for_guest(name="Fault")
    )
    Payment.objects.create(donation=gift, reference=gift.reference, provider="mpesa", amount=amount, currency="KES",
                           status=Payment.Status.SUCCEEDED, receipt=_mpesa_id(rng))  # fmt: skip
    donation_complete(donation_id=gift.pk)
    now = timezone.now()
    payout = Payout.objects.create(
        reference=f"FLT-PO-{rng.getrandbits(64):016x}",
        patient=cast.payout_patient,
        treatment_partner=cast.payout_patient.treatment_partner,
        provider="mpesa",
        msisdn=cast.payout_patient.treatment_partner.payout_msisdn,
        amount=amount,
        currency="KES",
        status=Payout.Status.SENT,
        requested_by=cast.maker,
        approved_by=cast.checker,
        provider_reference=f"AG_{_stamp()[:8]}_{rng.getrandbits(80):020x}",
        approved_at=now,
        sent_at=now,
    )
    body = daraja.b2c_result(  # Daraja's B2C result
        originator_conversation_id=payout.reference,
        conversation_id=payout.provider_reference,
        receipt=_mpesa_id(rng),
        amount=int(amount),
        receiver="254708374149 - Fault Hospital",
        timeout_url="https://example.invalid/timeout",
    )
    path = B2C_PATH.format(token=secrets.b2c_token)
    return Delivery("b2c", payout.reference, path, _bytes(body), amount)


def _mtn_delivery(cast: Cast, secrets: Secrets, rng: random.Random) -> Delivery:
    """A request to pay MTN approved: the status object PUT to the payment's own X-Callback-Url (v1 bodies carry
    no referenceId), and the same object as the sandbox's answer to its status GET."""
    from django.utils.crypto import salted_hmac

    from payments.url_tokens import TOKEN_SALT

    amount = Decimal(rng.choice((1000, 2500, 5000, 10000, 20000)))
    reference_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))  # our X-Reference-Id
    token = "".join(rng.choice(string.ascii_letters + string.digits + "-_") for _ in range(32))
    # payments.url_tokens.url_token_digest, keyed with gunicorn's SECRET_KEY (the seeding process may have another)
    digest = salted_hmac(TOKEN_SALT, token, secret=secrets.secret_key, algorithm="sha256").hexdigest()
    msisdn = f"25677{rng.randrange(10**7):07d}"
    payment = _pending_payment(
        cast.ugx_patients,
        rng,
        amount=amount,
        provider="mtn",
        channel="",
        msisdn=msisdn,
        ref=reference_id,
        token_digest=digest,
    )
    status_object = mtn.status_object(  # fixtures/mtn/callback_collection_successful.json, pointed at our payment
        external_id=payment.reference,
        amount=f"{amount:.0f}",
        currency="UGX",
        msisdn=msisdn,
        status="SUCCESSFUL",
        payer_message=f"Donation {payment.reference}",
        payee_note=f"Donation {payment.reference}",
        financial_transaction_id=str(rng.randrange(10**8, 10**9)),
    )
    learn = _learn(
        provider="mtn",
        transaction_id=reference_id,
        external_id=payment.reference,
        amount=status_object["amount"],
        currency="UGX",
        msisdn=msisdn,
        payer_message=status_object["payerMessage"],
        payee_note=status_object["payeeNote"],
        financial_transaction_id=status_object["financialTransactionId"],
    )
    path = MTN_PATH.format(token=token)
    return Delivery("mtn", payment.reference, path, _bytes(status_object), amount, method="PUT", learn=learn)


def _airtel_delivery(cast: Cast, secrets: Secrets, rng: random.Random) -> Delivery:
    """A USSD push approved: Airtel's collection callback with its `hash`; the sandbox's enquiry says TS."""
    from payments.providers.airtel.client import airtel_id

    amount = Decimal(rng.choice((1000, 2500, 5000, 10000, 20000)))
    msisdn = f"25675{rng.randrange(10**7):07d}"
    payment = _pending_payment(
        cast.ugx_patients,
        rng,
        amount=amount,
        provider="airtel",
        channel="",
        msisdn=msisdn,
        ref=None,
        external_id=airtel_id,
    )
    transaction_id = payment.external_id  # our reference in Airtel's alphabet
    letter = rng.choice(string.ascii_uppercase)  # an airtel_money_id such as MP210603.1234.L06941
    money_id = f"MP{_stamp()[2:8]}.{rng.randrange(10**4):04d}.{letter}{rng.randrange(10**5):05d}"
    body = airtel.collection_callback(  # fixtures/airtel/callback_success.json, pointed at our payment
        transaction_id=transaction_id,
        money_id=money_id,
        result=Result.SUCCESS,
        currency="UGX",
        amount=amount,
        secret=secrets.airtel_callback_secret,
    )
    learn = _learn(provider="airtel", transaction_id=money_id, external_id=transaction_id,
                   amount=f"{amount:.0f}", currency="UGX", msisdn=msisdn)  # fmt: skip
    return Delivery("airtel", payment.reference, AIRTEL_PATH, _bytes(body), amount, needle=transaction_id, learn=learn)


def _bytes(body: dict) -> bytes:
    return json.dumps(body).encode()


def _stamp() -> str:
    return datetime.now().strftime("%Y%m%d%H%M%S")  # noqa: DTZ005 (Daraja sends naive Nairobi time)


def _mpesa_id(rng: random.Random) -> str:
    """A Safaricom-style transaction id such as RKL51ZDR4F (10 upper-case letters and digits)."""
    alphabet = string.ascii_uppercase + string.digits
    return "S" + "".join(rng.choice(alphabet) for _ in range(9))
