"""Idempotent demo data for `make run`: treatment partners (their payout destinations recorded as approved:
demo data, not a second person), published patients in TZS, KES, UGX and EUR, a superuser. It lives in the
portal, above the domain apps, because it fills all of them (the opening balances go through donor's ledger)."""

import os
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from donor.ledger import ledger_seed_opening_balance
from patients.destinations import destination_seed
from patients.models import Patient, TreatmentPartner

PARTNERS = [
    {
        "name": "Kilimanjaro Christian Medical Centre",
        "country": "TZ",
        "city": "Moshi",
        "payout_provider": "azampay",
        "payout_msisdn": "255754000111",
    },
    {
        "name": "Kijabe Hospital",
        "country": "KE",
        "city": "Kijabe",
        "payout_provider": "mpesa",
        "payout_msisdn": "254708374149",
    },
    {
        "name": "Mulago National Referral Hospital",
        "country": "UG",
        "city": "Kampala",
        "payout_provider": "mtn",
        "payout_msisdn": "256772123456",
    },
]
PATIENTS = [
    {
        "code": "PAT-0001",
        "name": "Neema Joseph",
        "condition": "Clubfoot",
        "currency": "TZS",
        "treatment": "Corrective surgery and casting",
        "partner": 0,
        "funding_goal": Decimal("1500000"),
        "story": "Neema is four and loves to dance. Surgery will let her walk to school with her sisters.",
    },
    {
        "code": "PAT-0002",
        "name": "Baraka Mushi",
        "condition": "Hydrocephalus",
        "currency": "TZS",
        "treatment": "Shunt placement",
        "partner": 0,
        "funding_goal": Decimal("2400000"),
        "story": "Baraka is eight months old. A shunt will relieve the pressure on his brain.",
        "funding_received": Decimal("2350000"),
    },
    {
        "code": "PAT-0003",
        "name": "Wanjiru Kamau",
        "condition": "Burn contractures",
        "currency": "KES",
        "treatment": "Reconstructive surgery",
        "partner": 1,
        "funding_goal": Decimal("120000"),
        "story": "Wanjiru, a farmer and mother of three, was burned in a cooking fire and cannot lift her arm.",
    },
    {
        "code": "PAT-0004",
        "name": "Okello David",
        "condition": "Cleft lip",
        "currency": "UGX",
        "treatment": "Cleft lip repair",
        "partner": 2,
        "funding_goal": Decimal("3200000"),
        "story": "Okello is two. After a short operation he will be able to feed and, later, speak clearly.",
    },
    {
        "code": "PAT-0005",
        "name": "Amina Said",
        "condition": "Cataracts",
        "currency": "EUR",
        "treatment": "Bilateral cataract surgery",
        "partner": 0,
        "funding_goal": Decimal("450"),
        "story": "Amina, 61, sells fruit in Stone Town. Surgery will give her sight back in both eyes.",
    },
]


class Command(BaseCommand):
    help = "Load demo patients (idempotent) and create the superuser from DJANGO_SUPERUSER_* if set."

    def handle(self, *args, **options) -> None:
        partners = []
        for data in PARTNERS:
            # An existing partner is kept as it is: where its payouts go changes only by an approved request.
            partner, created = TreatmentPartner.objects.get_or_create(name=data["name"], defaults=data)
            if created:
                destination_seed(partner, note="demo data (seed_demo)")
            partners.append(partner)
        for data in PATIENTS:
            data = dict(data)
            opening = data.pop("funding_received", Decimal("0"))
            partner = partners[data.pop("partner")]
            patient, created = Patient.objects.get_or_create(
                code=data["code"], defaults={**data, "treatment_partner": partner, "published": True}
            )
            if created and opening:
                # Opening balances go through the ledger so verify_ledger holds on demo data too.
                ledger_seed_opening_balance(patient=patient, amount=opening)
            self.stdout.write(f"{'created' if created else 'kept'} {patient}")
        self._superuser()
        self.stdout.write(self.style.SUCCESS(f"Demo data ready: {Patient.objects.count()} patients."))

    def _superuser(self) -> None:
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME")
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
        if not username or not password:
            self.stdout.write("No DJANGO_SUPERUSER_USERNAME/_PASSWORD set: no superuser created.")
            return
        User = get_user_model()
        if User.objects.filter(username=username).exists():
            self.stdout.write(f"Superuser {username} exists.")
            return
        User.objects.create_superuser(
            username=username, password=password, email=os.environ.get("DJANGO_SUPERUSER_EMAIL", "")
        )
        self.stdout.write(f"Superuser {username} created.")
