from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
MPESA_STATEMENT = FIXTURES / "mpesa_org_statement_2026-11.csv"
GENERIC_STATEMENT = FIXTURES / "generic_statement_2026-11.csv"
