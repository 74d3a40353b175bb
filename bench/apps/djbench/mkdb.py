"""Creates bench/.data/djbench.sqlite3 with 200 items (idempotent; atomic: built aside, renamed).

Run with the bench venv from bench/apps: python -m djbench.mkdb
"""
import os
import sys


def ensure():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djbench.settings")
    import django
    from django.conf import settings

    django.setup()
    final = settings.DATABASES["default"]["NAME"]
    if os.path.exists(final):
        return final
    from django.db import connection

    from .models import Item

    os.makedirs(os.path.dirname(final), exist_ok=True)
    tmp = f"{final}.{os.getpid()}.tmp"
    connection.close()
    connection.settings_dict["NAME"] = tmp
    try:
        with connection.schema_editor() as editor:
            editor.create_model(Item)
        Item.objects.bulk_create(
            Item(name=f"item {i:03d}", price=f"{i * 1.25:.2f}", stock=i % 17) for i in range(200))
        connection.close()
        os.chmod(tmp, 0o644)
        os.replace(tmp, final)
    finally:
        connection.close()
        connection.settings_dict["NAME"] = final
        if os.path.exists(tmp):
            os.unlink(tmp)
    return final


if __name__ == "__main__":
    sys.stdout.write(ensure() + "\n")
