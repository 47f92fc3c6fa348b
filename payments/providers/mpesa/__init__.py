"""Safaricom M-Pesa Daraja (Kenya): STK push, paybill (C2B) and payouts (B2C) (docs/providers/mpesa.md).

Modules: `codes` (ResultCodes, kinds, limits), `client` (the host, the OAuth token, the STK password),
`stk` (STK push, its callback, the STK Push Query), `paybill` (C2B validation/confirmation, URL
registration), `payouts` (B2C request and result), `trust` (what a Daraja callback can prove),
`provider` (the class the registry knows), `config` (its settings). Kept light: settings import `config`.
"""
