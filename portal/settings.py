"""Settings come only from the environment (see README, "Configuration")."""

from pathlib import Path

from plumbing.config import csv, database, envbool, envint, envstr, envurl, redis_url, secret

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(envstr("PAMPAM_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = envbool("DEBUG", False)
SECRET_KEY = secret("SECRET_KEY", "pampam-insecure-dev-key" if DEBUG else "")
if not SECRET_KEY:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("Environment variable SECRET_KEY must be set when DEBUG is off.")
# Key for cluster credentials at rest; derived from SECRET_KEY unless given separately.
CREDENTIALS_KEY = secret("CREDENTIALS_KEY", "")

ALLOWED_HOSTS = csv("ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = csv("CSRF_TRUSTED_ORIGINS", "")
PORTAL_URL = envurl("PORTAL_URL", "http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "django_rq",
    "auditlog",
    "portal",
    "clusters",
    "releases",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "portal.middleware.SecurityHeadersMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "auditlog.middleware.AuditlogMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
]

ROOT_URLCONF = "portal.urls"
ASGI_APPLICATION = "portal.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.context.navigation",
            ],
            # `|http_url` everywhere, so an outside URL never becomes a link without it.
            "builtins": ["portal.templatetags.links"],
        },
    },
]

DATABASES = {"default": database("DATABASE_URL", f"sqlite:///{VAR_DIR / 'pampam.sqlite3'}")}
DATABASES["default"]["CONN_MAX_AGE"] = envint("DATABASE_CONN_MAX_AGE", 0, minimum=0)
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The demo runs web, worker and watcher on one SQLite file: wait for locks, don't fail.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = redis_url("REDIS_URL", "redis://127.0.0.1:6379/0")
RQ_QUEUES = {"default": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 3600}}
RQ = {"COMMIT_MODE": "on_db_commit"}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "capacity": 1000, "expiry": 30},
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = envstr("TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = envbool("SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

# Outside systems (each optional: an empty URL means "not configured").
JENKINS_URL = envurl("JENKINS_URL")
JENKINS_USER = envstr("JENKINS_USER")
JENKINS_TOKEN = secret("JENKINS_TOKEN")
JENKINS_WEBHOOK_SECRET = secret("JENKINS_WEBHOOK_SECRET")
# How often a follower polls Jenkins, how it backs off on errors, and how long one job follows
# before handing over to a fresh one (so no worker is held for hours).
JENKINS_POLL_SECONDS = envint("JENKINS_POLL_SECONDS", 1, minimum=1)
JENKINS_RETRY_DELAYS = (1, 2, 5, 10, 30)
JENKINS_FOLLOW_SLICE_SECONDS = envint("JENKINS_FOLLOW_SLICE_SECONDS", 300, minimum=0)
GITHUB_API_URL = envurl("GITHUB_API_URL")
GITHUB_TOKEN = secret("GITHUB_TOKEN")
GITHUB_WEBHOOK_SECRET = secret("GITHUB_WEBHOOK_SECRET")
GRAFANA_URL = envurl("GRAFANA_URL")
GRAFANA_TOKEN = secret("GRAFANA_TOKEN")
SLACK_WEBHOOK_URL = secret("SLACK_WEBHOOK_URL")
METRICS_TOKEN = secret("METRICS_TOKEN")

# Per-process memory cache. What it holds (GitHub changelogs keyed by sha pairs) is immutable
# and cheap to fetch again, and a memory cache cannot fail: a Redis-backed one would turn a
# Redis outage into errors on every page that shows a changelog.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "pampam",
        "OPTIONS": {"MAX_ENTRIES": 2000},
    }
}

# The watcher writes a heartbeat; /readyz fails when it is older than this.
WATCHER_STALE_SECONDS = envint("WATCHER_STALE_SECONDS", 60, minimum=1)
RECONCILE_INTERVAL_SECONDS = envint("RECONCILE_INTERVAL_SECONDS", 30, minimum=1)
HISTORY_PAGE_SIZE = envint("HISTORY_PAGE_SIZE", 50, minimum=1)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"}},
}
