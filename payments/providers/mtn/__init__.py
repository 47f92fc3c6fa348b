"""MTN Mobile Money (MoMo Open API): collections (request to pay), payouts (disbursement transfers) and
refunds (docs/providers/mtn.md).

Modules: `codes` (paths, kinds, the status and reason tables, text rules), `client` (the host, one token per
product, the headers every call needs, error sentences), `status` (reading MTN's status object, which is also
the body of every callback), `collection` (request to pay, its status and its callback), `disbursement`
(transfers), `refunds`, `provider` (the class the registry knows), `config` (its settings). Kept light:
settings import `config`.
"""
