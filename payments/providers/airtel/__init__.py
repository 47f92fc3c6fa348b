"""Airtel Money (Airtel Africa Open API): collections by USSD push, disbursements (payouts) and full refunds
(docs/providers/airtel.md).

Modules: `codes` (paths, states, response codes, kinds), `client` (the host, the OAuth token, the routing
headers, our ids and the MSISDN form Airtel wants), `signing` (v2 message signing and the disbursement PIN,
both with Airtel's RSA key), `collection` (the push and the transaction enquiry), `callbacks` (the collection
callback, its `hash`, redaction), `disbursement` (payouts and their enquiry), `refunds`, `provider` (the
class the registry knows), `config` (its settings). Kept light: settings import `config`.
"""
