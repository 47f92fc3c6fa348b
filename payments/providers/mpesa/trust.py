"""What a Daraja callback can prove. Daraja signs nothing:

- STK: the payment's secret URL only proves the URL was ours; the STK Push Query decides (unless the
  operator sets MPESA_TRUST_CALLBACKS);
- paybill and payouts have no query we can make: the secret registered in their URLs (MPESA_C2B_TOKEN,
  MPESA_B2C_TOKEN) is the evidence, and a callback without it is held for review;
- the source address (MPESA_ALLOWED_IPS, a community-circulated list) is logged as a soft signal, and is
  decisive only with MPESA_IP_ALLOWLIST_STRICT.
"""

import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from payments.providers.base import CallbackTrust, RawCallback, UrlToken
from payments.providers.mpesa.codes import C2B_KINDS, INITIATOR_KINDS, STK_KIND

logger = logging.getLogger("payments.mpesa")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class TrustPolicy:
    trust_callbacks: bool
    allowed_networks: tuple[Network, ...]
    ip_allowlist_strict: bool

    @classmethod
    def build(cls, *, trust_callbacks: bool, allowed_ips: Iterable[str], ip_allowlist_strict: bool) -> "TrustPolicy":
        networks = tuple(ipaddress.ip_network(str(ip).strip(), strict=False) for ip in allowed_ips if str(ip).strip())
        return cls(trust_callbacks, networks, ip_allowlist_strict)

    def source_allowed(self, ip: str | None) -> bool:
        if not ip:
            return False
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in network for network in self.allowed_networks)


def authenticate(policy: TrustPolicy, callback: RawCallback) -> CallbackTrust:
    kind, ip = callback.kind, callback.client_ip
    if callback.url_token == UrlToken.INVALID:
        logger.warning("M-Pesa %s callback with an unknown URL token rejected", kind)
        return CallbackTrust.REJECTED
    has_token = callback.url_token == UrlToken.VALID
    if policy.allowed_networks and not policy.source_allowed(ip):
        if policy.ip_allowlist_strict:
            logger.warning("M-Pesa %s callback from %s: not in MPESA_ALLOWED_IPS; rejected (strict)", kind, ip)
            return CallbackTrust.REJECTED
        logger.warning("M-Pesa %s callback from %s: not in MPESA_ALLOWED_IPS (soft signal only)", kind, ip)
        if kind == STK_KIND:
            return CallbackTrust.UNVERIFIED  # confirmed by the STK query even when callbacks are trusted
    if kind in (*C2B_KINDS, *INITIATOR_KINDS) and has_token:
        return CallbackTrust.TRUSTED  # the secret URL we gave: the only evidence C2B/B2C offer
    if policy.trust_callbacks and has_token:
        return CallbackTrust.TRUSTED  # the operator chose to believe a callback on its secret URL
    return CallbackTrust.UNVERIFIED
