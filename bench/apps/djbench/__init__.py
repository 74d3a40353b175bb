"""djbench: a small Django project for the benchmark's django scenario.

One view (views.items) reads 20 rows from a SQLite table through the ORM and renders them with
a template. The database (bench/.data/djbench.sqlite3) is created by `python -m djbench.mkdb`,
which the harness runs before the scenario; wsgi.py also creates it if it is missing.
"""
