from decimal import Decimal

import factory

from donor.models import Donation, Donor
from patients.tests.factories import PatientFactory


class DonorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Donor

    name = factory.Faker("name")
    email = factory.Faker("email")
    phone = "255712345678"


class DonationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Donation

    reference = factory.Sequence(lambda n: f"TEST-DN-{n}-20260101000000")
    donor = factory.SubFactory(DonorFactory)
    patient = factory.SubFactory(PatientFactory)
    amount = Decimal("5000")
    currency = factory.LazyAttribute(lambda d: d.patient.currency if d.patient else "TZS")
