"""AzamPay (Tanzania): MNO push for five operators, hosted card checkout, bank checkout (docs/providers/azampay.md).

Modules: `codes` (channels, status words), `client` (hosts, token, errors), `checkout` (the three ways to
collect), `status` (the status query), `callbacks` (authenticate, parse, redact), `provider` (the class the
registry knows), `config` (its settings). Kept light on purpose: config/settings.py imports `config`.
"""
