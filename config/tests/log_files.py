"""The log files a test reads back, with their latest rotation: the suite's other worker may rotate a file
(10 MB) just after a test's line went in, and that line is then in `<name>.log.1`."""

from pathlib import Path

from django.conf import settings


def log_files() -> list[Path]:
    return [*Path(settings.LOG_DIR).glob("*.log"), *Path(settings.LOG_DIR).glob("*.log.1")]
