"""URL configuration: / is the benchmarked view."""
from django.urls import path

from . import views

urlpatterns = [path("", views.items)]
