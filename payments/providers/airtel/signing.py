"""What Airtel's RSA public key is used for (docs/providers/airtel.md):

- the disbursement PIN: RSA with PKCS#1 v1.5 padding (three independent integrations, one in production),
  OAEP with SHA-1 as the alternative one library uses (AIRTEL_PIN_PADDING=oaep), base64;
- v2 message signing (AIRTEL_SIGN_REQUESTS): `x-signature` = base64(AES-256-CBC/PKCS#5 of the exact body,
  with a random 32-byte key and 16-byte IV), `x-key` = base64(RSA-PKCS#1 v1.5 of base64(key) ":" base64(iv)).
"""

import base64
import binascii
import os

from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as rsa_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from payments.providers.airtel.codes import OAEP, PKCS1
from payments.providers.base import ProviderError

AES_KEY_BYTES = 32
AES_IV_BYTES = 16


def load_public_key(text: str) -> rsa.RSAPublicKey:
    """A PEM key (literal "\\n" allowed) or the bare base64 DER Airtel's encryption-keys API returns."""
    text = text.replace("\\n", "\n").strip()
    try:
        if "-----BEGIN" in text:
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode("".join(text.split()), validate=True))
    except (ValueError, TypeError, binascii.Error) as exc:
        raise ProviderError("Airtel Money's public key (AIRTEL_PUBLIC_KEY) could not be read.") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise ProviderError("Airtel Money's public key (AIRTEL_PUBLIC_KEY) is not an RSA key.")
    return key


def rsa_encrypt(key_text: str, plaintext: bytes, padding_name: str = PKCS1) -> str:
    key = load_public_key(key_text)
    if padding_name == OAEP:
        scheme: rsa_padding.AsymmetricPadding = rsa_padding.OAEP(
            mgf=rsa_padding.MGF1(hashes.SHA1()),  # noqa: S303 (the padding one Airtel integration uses)
            algorithm=hashes.SHA1(),  # noqa: S303
            label=None,
        )
    else:
        scheme = rsa_padding.PKCS1v15()
    return base64.b64encode(key.encrypt(plaintext, scheme)).decode("ascii")


def encrypt_pin(key_text: str, pin: str, padding_name: str = PKCS1) -> str:
    """The disbursement PIN as Airtel wants it in the body's `pin`."""
    return rsa_encrypt(key_text, pin.encode(), padding_name)


def sign_body(key_text: str, raw: bytes, *, aes_key: bytes | None = None, iv: bytes | None = None) -> dict[str, str]:
    """The `x-signature` and `x-key` headers for exactly these body bytes (send them unchanged)."""
    aes_key = aes_key if aes_key is not None else os.urandom(AES_KEY_BYTES)
    iv = iv if iv is not None else os.urandom(AES_IV_BYTES)
    if len(aes_key) != AES_KEY_BYTES or len(iv) != AES_IV_BYTES:
        raise ValueError("AES-256-CBC needs a 32-byte key and a 16-byte IV")
    padder = padding.PKCS7(algorithms.AES.block_size).padder()  # PKCS#5 padding, for AES's 16-byte blocks
    padded = padder.update(raw) + padder.finalize()
    encryptor = Cipher(algorithms.AES(aes_key), modes.CBC(iv)).encryptor()
    signature = base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode("ascii")
    secret = f"{base64.b64encode(aes_key).decode()}:{base64.b64encode(iv).decode()}".encode()
    return {"x-signature": signature, "x-key": rsa_encrypt(key_text, secret, PKCS1)}
