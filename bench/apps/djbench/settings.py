"""Django settings of the benchmark project: production-like (DEBUG off), SQLite, no auth."""
import os

BASE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(BASE, "..", "..", ".data")

SECRET_KEY = "corral-bench-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "djbench.urls"
INSTALLED_APPS = ["djbench"]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "APP_DIRS": True,
    "OPTIONS": {},
}]
DATABASES = {"default": {
    "ENGINE": "django.db.backends.sqlite3",
    "NAME": os.path.join(DATA, "djbench.sqlite3"),
}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = True
WSGI_APPLICATION = "djbench.wsgi.application"
LOGGING_CONFIG = None
