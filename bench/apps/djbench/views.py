"""The benchmarked view: 20 rows from SQLite, rendered with a template."""
from django.shortcuts import render

from .models import Item


def items(request):
    rows = Item.objects.order_by("id")[:20]
    return render(request, "djbench/items.html", {"items": rows})
