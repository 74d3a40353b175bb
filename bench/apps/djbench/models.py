"""The one table of the benchmark project."""
from django.db import models


class Item(models.Model):
    name = models.CharField(max_length=64)
    price = models.DecimalField(max_digits=8, decimal_places=2)
    stock = models.IntegerField()

    class Meta:
        app_label = "djbench"
