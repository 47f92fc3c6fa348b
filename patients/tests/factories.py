from decimal import Decimal

import factory

from patients.models import Patient, TreatmentPartner


class TreatmentPartnerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TreatmentPartner

    name = factory.Sequence(lambda n: f"Hospital {n}")


class PatientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Patient

    code = factory.Sequence(lambda n: f"PAT-{n + 1000:04d}")
    name = factory.Faker("name")
    story = "Needs surgery."
    condition = "Clubfoot"
    currency = "TZS"
    funding_goal = Decimal("100000")
    published = True
    treatment_partner = factory.SubFactory(TreatmentPartnerFactory)
