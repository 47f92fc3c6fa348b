"""House rules about the code itself that a reviewer would otherwise have to remember.

Every non-test module of the four apps opens with a docstring that says why it exists (README "Architecture"
names the apps; a module's docstring names its job), so a new engineer can read the tree top-down.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPS = ("payments", "donor", "patients", "config")


def app_modules() -> list[Path]:
    modules = []
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if {"tests", "migrations"} & set(relative.parts) or not path.read_text().strip():
                continue
            modules.append(relative)
    return modules


def test_every_module_says_why_it_exists():
    modules = app_modules()
    assert len(modules) > 50  # the walk found the apps
    silent = [
        str(module)
        for module in modules
        if len((ast.get_docstring(ast.parse((ROOT / module).read_text())) or "").split()) < 5
    ]
    assert silent == [], "modules without a docstring saying why they exist"
