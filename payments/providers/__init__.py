"""Provider adapters: one package per provider (HTTP and translation, no ORM), the capability contracts
(`base`), the shared HTTP client and token cache, the settings declarations (`config`) and the explicit
registry (`registry`). This module imports nothing, so config/settings.py can read `<provider>/config.py`
while Django is still starting."""
