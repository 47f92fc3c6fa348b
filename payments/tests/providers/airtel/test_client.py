"""The Airtel client: the token (cached, `expires_in` as a number or a string, dropped when refused), our ids in
Airtel's alphabet, the MSISDN without its country code, the RSA key (configured or fetched), the PIN and the
v2 message signing — decrypted here with the test key, as Airtel would."""

import base64

import pytest
import requests
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric import padding as rsa_padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from payments.providers.airtel.client import airtel_id, national_msisdn, token_ttl
from payments.providers.airtel.signing import encrypt_pin, load_public_key, sign_body
from payments.providers.base import ProviderError
from payments.tests.providers.airtel.support import (
    ENQUIRY_URL,
    KEYS_URL,
    REFERENCE,
    TOKEN_URL,
    calls_to,
    fixture,
    make_provider,
    private_key,
    public_der_b64,
    public_pem,
    ref,
    sent_json,
)


def test_token_request_is_json_client_credentials_and_is_cached(airtel, with_token):
    airtel.get(ENQUIRY_URL, json=fixture("enquiry_in_progress.json"))
    provider = make_provider()
    provider.fetch_status(ref())
    provider.fetch_status(ref())
    assert len(calls_to(airtel, TOKEN_URL)) == 1
    assert sent_json(calls_to(airtel, TOKEN_URL)[0]) == {
        "client_id": "test-client-id",
        "client_secret": "test-client-secret",
        "grant_type": "client_credentials",
    }
    assert (
        calls_to(airtel, ENQUIRY_URL)[0].request.headers["Authorization"] == "Bearer DHeopO4IXBaAGUcZpXgymyfSkFtjvHJz"
    )


def test_token_is_shared_between_provider_instances(airtel, with_token):
    airtel.get(ENQUIRY_URL, json=fixture("enquiry_in_progress.json"))
    make_provider().fetch_status(ref())
    make_provider().fetch_status(ref())
    assert len(calls_to(airtel, TOKEN_URL)) == 1


@pytest.mark.parametrize(("expires_in", "ttl"), [(180, 170), ("180", 170), ("3600", 3590), (None, 170), (10, 5)])
def test_expires_in_is_trusted_as_a_number_or_a_string(expires_in, ttl):
    assert token_ttl(expires_in) == ttl


def test_a_string_expiry_is_read(airtel):
    airtel.post(TOKEN_URL, json=fixture("token_success_string_expiry.json"))
    assert make_provider().access_token() == "DHeopO4IXBaAGUcZpXgymyfSkFtjvHJz"


def test_a_refused_token_is_dropped_and_fetched_again_for_a_read(airtel):
    airtel.post(TOKEN_URL, json={**fixture("token_success.json"), "access_token": "old"})
    airtel.post(TOKEN_URL, json={**fixture("token_success.json"), "access_token": "new"})
    airtel.get(ENQUIRY_URL, status=401, json=fixture("token_invalid_token.json"))
    airtel.get(ENQUIRY_URL, json=fixture("enquiry_in_progress.json"))
    provider = make_provider()
    provider.fetch_status(ref())
    sent = [call.request.headers["Authorization"] for call in calls_to(airtel, ENQUIRY_URL)]
    assert sent == ["Bearer old", "Bearer new"]


def test_wrong_credentials_are_a_provider_error(airtel):
    airtel.post(TOKEN_URL, status=400, json=fixture("token_invalid_client.json"))
    with pytest.raises(ProviderError, match="refused our credentials") as raised:
        make_provider().access_token()
    assert raised.value.ambiguous is False


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("RHCI-DN-123-20251219120000", "RHCIDN12320251219120000"),
        ("RHCI-DN-123-20251219120000-2", "RHCIDN123202512191200002"),
        ("RHCI-PO-0123456789abcdef", "RHCIPO0123456789abcdef"),
    ],
)
def test_our_reference_in_airtels_alphabet(reference, expected):
    assert airtel_id(reference) == expected
    assert make_provider().external_id(reference, "") == expected


def test_a_reference_that_would_not_fit_becomes_a_hash():
    long = "RHCI-DN-" + "9" * 70
    assert airtel_id(long).isalnum() and len(airtel_id(long)) == 64
    assert airtel_id("A-B") != "AB" and len(airtel_id("A-B")) == 64  # too short: at least 5 characters


@pytest.mark.parametrize(
    ("msisdn", "country", "national"),
    [
        ("256712345678", "UG", "712345678"),
        ("+256 712 345 678", "UG", "712345678"),
        ("0712345678", "UG", "712345678"),
        ("712345678", "UG", "712345678"),
        ("260971234567", "ZM", "971234567"),
        ("254712345678", "KE", "712345678"),
    ],
)
def test_msisdn_without_the_country_code(msisdn, country, national):
    assert national_msisdn(msisdn, country) == national


@pytest.mark.parametrize("msisdn", ["254712345678", "", "2567", "not a number"])
def test_a_number_of_another_country_is_refused(msisdn):
    with pytest.raises(ProviderError, match="mobile number of UG"):
        national_msisdn(msisdn, "UG")


def decrypt_pkcs1(text: str) -> bytes:
    return private_key().decrypt(base64.b64decode(text), rsa_padding.PKCS1v15())


def test_pin_is_encrypted_with_pkcs1_v15_by_default():
    assert decrypt_pkcs1(encrypt_pin(public_pem(), "4321")) == b"4321"


def test_pin_with_oaep_when_configured():
    oaep = rsa_padding.OAEP(mgf=rsa_padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)  # noqa: S303
    encrypted = encrypt_pin(public_pem(), "4321", "oaep")
    assert private_key().decrypt(base64.b64decode(encrypted), oaep) == b"4321"


def test_keys_as_pem_with_literal_newlines_or_as_bare_der():
    escaped = public_pem().replace("\n", "\\n")
    for text in (public_pem(), escaped, public_der_b64()):
        assert load_public_key(text).public_numbers() == private_key().public_key().public_numbers()
    with pytest.raises(ProviderError, match="could not be read"):
        load_public_key("not a key")


def test_signing_encrypts_the_exact_body_with_a_key_airtel_can_unwrap():
    raw = b'{"reference":"RHCIDN1","transaction":{"amount":1000}}'
    headers = sign_body(public_pem(), raw)
    aes_key_b64, _, iv_b64 = decrypt_pkcs1(headers["x-key"]).decode().partition(":")
    aes_key, iv = base64.b64decode(aes_key_b64), base64.b64decode(iv_b64)
    assert (len(aes_key), len(iv)) == (32, 16)
    decryptor = Cipher(algorithms.AES(aes_key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(base64.b64decode(headers["x-signature"])) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    assert unpadder.update(padded) + unpadder.finalize() == raw


def test_signing_uses_a_fresh_key_each_time():
    raw = b"{}"
    assert sign_body(public_pem(), raw)["x-signature"] != sign_body(public_pem(), raw)["x-signature"]


def test_the_key_is_fetched_from_airtel_when_none_is_configured_and_cached(airtel, with_token):
    airtel.get(KEYS_URL, json={**fixture("encryption_keys.json"), "data": {"key": public_der_b64(), "key_id": 1}})
    provider = make_provider()
    assert provider.client.public_key() == public_der_b64()
    assert make_provider().client.public_key() == public_der_b64()
    assert len(calls_to(airtel, KEYS_URL)) == 1
    headers = calls_to(airtel, KEYS_URL)[0].request.headers
    assert (headers["X-Country"], headers["X-Currency"]) == ("UG", "UGX")


def test_a_configured_key_is_never_fetched(airtel):
    assert make_provider(public_key_pem=public_pem()).client.public_key() == public_pem().strip()
    assert not airtel.calls


def test_a_key_answer_without_a_key_is_a_provider_error(airtel, with_token):
    airtel.get(KEYS_URL, json={"status": {"code": "500", "response_code": "DP02010001000", "success": False}})
    with pytest.raises(ProviderError):
        make_provider().client.public_key()


def test_unreachable_airtel_on_a_read_is_retryable_not_ambiguous(airtel, with_token):
    airtel.get(ENQUIRY_URL, body=requests.ConnectionError("refused"))
    with pytest.raises(ProviderError) as raised:
        make_provider().fetch_status(ref(reference=REFERENCE))
    assert raised.value.retryable and not raised.value.ambiguous
