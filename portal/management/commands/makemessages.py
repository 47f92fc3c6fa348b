"""`manage.py makemessages` with the project's catalogue options: entries sorted by msgid and without source line
numbers, so two engineers adding strings to locale/sw/LC_MESSAGES/django.po rarely touch the same lines (a line
moved in a template changes nothing), and the folders that hold no donor-facing text skipped (the virtualenv, tests,
collected static files, benchmarks), and strings no longer used dropped. docs/glossary.md has the whole routine."""

from django.core.management.commands import makemessages

SKIPPED = [".venv", "*/tests/*", "staticfiles", "bench", "scripts", "logs"]


class Command(makemessages.Command):
    msgmerge_options = [*makemessages.Command.msgmerge_options, "--sort-output", "--no-location"]
    msguniq_options = [*makemessages.Command.msguniq_options, "--sort-output", "--no-location"]
    msgattrib_options = [*makemessages.Command.msgattrib_options, "--sort-output", "--no-location"]
    xgettext_options = [*makemessages.Command.xgettext_options, "--sort-output", "--no-location"]

    def handle(self, *args, **options):
        options["ignore_patterns"] = [*options.get("ignore_patterns", []), *SKIPPED]
        options["no_obsolete"] = True  # a string no longer used leaves the catalogue (no "#~" entries to merge)
        return super().handle(*args, **options)
