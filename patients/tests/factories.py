from decimal import Decimal

import factory

from patients.destinations import destination_seed
from patients.models import Patient, TreatmentPartner


class TreatmentPartnerFactory(factory.django.DjangoModelFactory):
    """A partner whose payout destination (when given) is already approved, as if two staff users had done
    it. `approved=False`: one whose destination nobody approved (payouts refuse it)."""

    class Meta:
        model = TreatmentPartner
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Hospital {n}")

    @factory.post_generation
    def approved(partner, create, extracted, **kwargs):
        if create and extracted is not False and (partner.payout_provider or partner.payout_msisdn):
            destination_seed(partner, note="test factory")


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
