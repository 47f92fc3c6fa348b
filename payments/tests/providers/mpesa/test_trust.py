"""What a Daraja callback can prove (Daraja signs nothing): the URL's secret, the operator's trust setting, the
source address; and the answer Daraja expects. No HTTP, no database."""

from payments.providers.base import CallbackTrust, RawCallback, UrlToken
from payments.providers.mpesa.provider import MpesaProvider
from payments.tests.mpesa_fakes import raw_fixture
from payments.tests.providers.mpesa.support import KWARGS

# --- trust ---------------------------------------------------------------------------------------------


BODY = raw_fixture("callback_success_documented.json")


def auth(provider, callback: RawCallback) -> CallbackTrust:
    return provider.authenticate_callback(callback)


def test_callbacks_are_never_trusted_by_default(provider):
    assert auth(provider, RawCallback(kind="stkpush", body=BODY, url_token=UrlToken.ABSENT)) == CallbackTrust.UNVERIFIED
    assert auth(provider, RawCallback(kind="stkpush", body=BODY, url_token=UrlToken.VALID)) == CallbackTrust.UNVERIFIED


def test_wrong_token_rejected(provider):
    assert auth(provider, RawCallback(kind="stkpush", body=BODY, url_token=UrlToken.INVALID)) == CallbackTrust.REJECTED
    assert auth(provider, RawCallback(kind="stkpush", body=BODY, url_token=UrlToken.INVALID)) == CallbackTrust.REJECTED


def test_trust_setting_trusts_only_the_token_url():
    provider = MpesaProvider(**KWARGS, trust_callbacks=True)
    assert auth(provider, RawCallback(kind="stkpush", body=BODY, url_token=UrlToken.VALID)) == CallbackTrust.TRUSTED
    assert auth(provider, RawCallback(kind="stkpush", body=BODY, url_token=UrlToken.ABSENT)) == CallbackTrust.UNVERIFIED


def test_ip_allowlist_is_soft_by_default():
    provider = MpesaProvider(**KWARGS, trust_callbacks=True, allowed_ips=["196.201.214.200", "196.201.212.0/24"])
    assert (
        auth(provider, RawCallback(kind="stkpush", body=BODY, url_token=UrlToken.VALID, client_ip="203.0.113.9"))
        == CallbackTrust.UNVERIFIED
    )
    assert (
        auth(provider, RawCallback(kind="stkpush", body=BODY, url_token=UrlToken.VALID, client_ip="196.201.212.74"))
        == CallbackTrust.TRUSTED
    )


def test_ip_allowlist_strict_rejects_others():
    provider = MpesaProvider(**KWARGS, allowed_ips=["196.201.214.200"], ip_allowlist_strict=True)
    assert (
        auth(provider, RawCallback(kind="stkpush", body=BODY, url_token=UrlToken.ABSENT, client_ip="203.0.113.9"))
        == CallbackTrust.REJECTED
    )
    assert (
        auth(provider, RawCallback(kind="stkpush", body=BODY, url_token=UrlToken.ABSENT, client_ip="196.201.214.200"))
        == CallbackTrust.UNVERIFIED
    )


def test_ack_body(provider):
    assert provider.ack("stkpush", True) == (200, {"ResultCode": 0, "ResultDesc": "Accepted"})
    assert provider.ack("stkpush", False) == (200, {"ResultCode": 0, "ResultDesc": "Accepted"})
