"""WSGI entry point of the benchmark project (djbench.wsgi:application)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # bench/apps
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djbench.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402

from djbench import mkdb  # noqa: E402

mkdb.ensure()
application = get_wsgi_application()
