import factory

from donor.tests.factories import DonationFactory
from payments.models import Payment


class PaymentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Payment

    donation = factory.SubFactory(DonationFactory)
    reference = factory.LazyAttribute(lambda p: p.donation.reference)
    provider = "azampay"
    channel = "Mpesa"
    msisdn = "255712345678"
    amount = factory.LazyAttribute(lambda p: p.donation.amount)
    currency = factory.LazyAttribute(lambda p: p.donation.currency)
    status = Payment.Status.PENDING
    provider_reference = factory.Sequence(lambda n: f"{n:032x}")
