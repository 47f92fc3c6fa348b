"""Local simulators of the payment providers and Telegram, served by `manage.py sandbox`.

Development, demos and tests only: production never imports this package. See docs/api.md ("Sandbox outcomes",
"The sandbox's own surface") for what each simulator answers.
"""

from payments.sandbox.server import SandboxServer, build_sandbox, run_sandbox

__all__ = ["SandboxServer", "build_sandbox", "run_sandbox"]
