"""M-Pesa's settings (read by config/settings.py) and the Daraja simulator's test values (Safaricom's public
sandbox shortcodes 174379 / 600984 / 600992 and its published STK passkey)."""

from payments.providers.config import ProviderConfig, Setting

SANDBOX_PASSKEY = "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919"

CONFIG = ProviderConfig(
    code="mpesa",
    real_when="MPESA_CONSUMER_KEY",
    settings=(
        Setting("consumer_key", "MPESA_CONSUMER_KEY", sandbox="sandbox-consumer-key"),
        Setting("consumer_secret", "MPESA_CONSUMER_SECRET", sandbox="sandbox-consumer-secret"),
        Setting("shortcode", "MPESA_SHORTCODE", default="174379", sandbox="174379"),
        Setting("passkey", "MPESA_PASSKEY", sandbox=SANDBOX_PASSKEY),
        Setting("api_url", "MPESA_API_URL", default="https://sandbox.safaricom.co.ke"),
        # Paybill (C2B): its shortcode (default MPESA_SHORTCODE) and the secret in the registered URLs.
        Setting("c2b_shortcode", "MPESA_C2B_SHORTCODE", sandbox="600984"),
        Setting("c2b_token", "MPESA_C2B_TOKEN", sandbox="sandbox-c2b-token"),
        # Payouts (B2C): the disbursement shortcode, its initiator and encrypted SecurityCredential, and the
        # secret in the result/timeout URLs we send.
        Setting("b2c_shortcode", "MPESA_B2C_SHORTCODE", sandbox="600992"),
        Setting("initiator_name", "MPESA_INITIATOR_NAME", sandbox="testapi"),
        Setting("security_credential", "MPESA_SECURITY_CREDENTIAL", sandbox="sandbox-security-credential"),
        Setting("b2c_token", "MPESA_B2C_TOKEN", sandbox="sandbox-b2c-token"),
        # The month close: the Safaricom number the Pull Transactions registration names (once).
        Setting("pull_nominated_number", "MPESA_PULL_NOMINATED_NUMBER", sandbox="254708374149"),
        Setting("transaction_type", "MPESA_TRANSACTION_TYPE", default="CustomerPayBillOnline"),
        Setting("party_b", "MPESA_TILL_NUMBER"),  # Buy Goods only: the till; PayBill uses the shortcode
        Setting("callback_url", "MPESA_CALLBACK_URL"),
        # Daraja callbacks are unsigned: by default every STK callback is confirmed with the STK Push Query.
        Setting("trust_callbacks", "MPESA_TRUST_CALLBACKS", default=False, cast=bool),
        # Safaricom's (community-circulated) callback source addresses: a soft signal unless strict.
        Setting("allowed_ips", "MPESA_ALLOWED_IPS", default=[], cast=list),
        Setting("ip_allowlist_strict", "MPESA_IP_ALLOWLIST_STRICT", default=False, cast=bool),
    ),
    sandbox_urls={"api_url": "/daraja"},
)
