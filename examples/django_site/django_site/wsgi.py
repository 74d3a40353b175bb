"""WSGI entry point of the example Django site.

    pip install 'django>=5,<6'
    corral serve django_site.wsgi:application --pythonpath examples/django_site

The SQLite database is created and migrated when this module is imported, so the
site runs with no manual step. Its path is $DJANGO_SITE_DB if set (the tests
point it at a temporary file), else examples/django_site/db.sqlite3.
"""

import fcntl
import os
from pathlib import Path

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_site.settings")

application = get_wsgi_application()


def _migrate():
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connections

    db = Path(settings.DATABASES["default"]["NAME"])
    db.parent.mkdir(parents=True, exist_ok=True)
    # Without preloading, every worker imports this module: one migrates at a
    # time (a lock on the database's directory).
    fd = os.open(db.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        call_command("migrate", interactive=False, verbosity=0)
    finally:
        os.close(fd)  # releases the lock
    # Never hand an open SQLite connection over to forked worker processes.
    connections.close_all()


_migrate()
