"""House rules about the code itself that a reviewer would otherwise have to remember.

Every non-test module of the apps opens with a docstring that says why it exists (README "Architecture"
names the apps; a module's docstring names its job), so a new engineer can read the tree top-down.

The layers run one way, portal → payments → receipts → donor → patients, with config beneath them all: a domain app
imports no presentation code and nothing of an app above it, and the admin site imports none of the apps whose
pages it shows (the dashboard plugs itself in from payments.admin). Checked on every import statement, those
inside functions too, so a lazy import cannot hide an arrow running back up.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APPS = ("portal", "pledges", "finance", "payments", "receipts", "donor", "patients", "config")


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


def imported(module: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse((ROOT / module).read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def reaches(name: str, forbidden: tuple[str, ...]) -> bool:
    return any(name == top or name.startswith(f"{top}.") for top in forbidden)


@pytest.mark.parametrize(
    ("app", "forbidden"),
    [
        ("patients", ("donor", "receipts", "payments", "pledges", "finance", "portal", "config.admin_site")),
        ("donor", ("receipts", "payments", "pledges", "finance", "portal", "config.admin_site")),
        ("receipts", ("payments", "pledges", "finance", "portal", "config.admin_site")),
        ("payments", ("pledges", "finance", "portal")),
        ("pledges", ("finance", "portal")),
        ("finance", ("pledges", "portal")),
    ],
)
def test_domain_apps_import_nothing_above_them(app, forbidden):
    arrows = {
        f"{module} imports {name}"
        for module in app_modules()
        if module.parts[0] == app
        for name in imported(module)
        if reaches(name, forbidden)
    }
    assert arrows == set()


def test_the_admin_site_imports_none_of_the_apps_it_shows():
    names = imported(Path("config/admin_site.py"))
    shown = ("payments", "receipts", "donor", "patients", "portal")
    assert names and not [name for name in names if reaches(name, shown)]
