"""Settings come only from the environment (see README, "Configuration")."""

import re
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from plumbing.config import (
    csv,
    database,
    envbool,
    envint,
    envstr,
    envurl,
    header_name,
    networks,
    pairs,
    redis_url,
    secret,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(envstr("PAMPAM_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = envbool("DEBUG", False)
SECRET_KEY = secret("SECRET_KEY", "pampam-insecure-dev-key" if DEBUG else "")
if not SECRET_KEY:
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
    "axes",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "plumbing",
    "portal",
    "clusters",
    "releases",
]

MIDDLEWARE = [
    "portal.middleware.ClientAddressMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "portal.middleware.SecurityHeadersMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "plumbing.fragments.ReadTokensOnce",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # After messages: it tells the person why they were signed out.
    "portal.access.SsoSessionMiddleware",
    "portal.middleware.NotFoundPageMiddleware",
    "releases.middleware.RefusedPageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "auditlog.middleware.AuditlogMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    # Last: turns a refused (locked-out) login into the lockout page.
    "axes.middleware.AxesMiddleware",
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
            "builtins": ["portal.templatetags.links", "releases.templatetags.widgets"],
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
# Leader election for the processes that must act alone (watcher, cron) when several replicas run
# (deploy/: on; the demo and a single machine: off). A Lease per process in LEADER_ELECTION_NAMESPACE
# (default: the pod's own namespace); client-go's terms: the holder renews every RETRY seconds and
# stops acting RENEW seconds after its last renewal; a standby takes over after LEASE seconds.
LEADER_ELECTION = envbool("LEADER_ELECTION", False)
LEADER_ELECTION_NAMESPACE = envstr("LEADER_ELECTION_NAMESPACE", "")
LEADER_ELECTION_LEASE_SECONDS = envint("LEADER_ELECTION_LEASE_SECONDS", 15, minimum=3)
LEADER_ELECTION_RENEW_SECONDS = envint("LEADER_ELECTION_RENEW_SECONDS", 10, minimum=2)
LEADER_ELECTION_RETRY_SECONDS = envint("LEADER_ELECTION_RETRY_SECONDS", 2, minimum=1)
if not LEADER_ELECTION_RETRY_SECONDS < LEADER_ELECTION_RENEW_SECONDS < LEADER_ELECTION_LEASE_SECONDS:
    raise ImproperlyConfigured(
        "Environment variables LEADER_ELECTION_RETRY_SECONDS < LEADER_ELECTION_RENEW_SECONDS < "
        "LEADER_ELECTION_LEASE_SECONDS must hold (a leader stops acting before a standby may start)."
    )

# An open websocket re-checks its session this often (logout and deactivation close it at once).
WEBSOCKET_SESSION_CHECK_SECONDS = envint("WEBSOCKET_SESSION_CHECK_SECONDS", 30, minimum=1)
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "capacity": 1000, "expiry": 30},
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Login throttling (django-axes): after LOGIN_FAILURE_LIMIT failures for one username, or from one
# address, further attempts are refused for LOGIN_COOLOFF_MINUTES — the portal's login page and
# the admin's alike. Attempts live in the database, shared by every web process.
AXES_FAILURE_LIMIT = envint("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=envint("LOGIN_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_HTTP_RESPONSE_CODE = 429
# REMOTE_ADDR is already the real client (portal.middleware.ClientAddressMiddleware).
AXES_CLIENT_IP_CALLABLE = "portal.access.client_ip"
AXES_VERBOSE = False
# Single sign-on with OpenID Connect (portal/sso.py, mozilla-django-oidc): on when OIDC_ISSUER is
# set. Endpoints come from the provider's discovery document. Provider groups named in
# OIDC_GROUP_MAP (`provider-group=portal-group,…`) set the portal groups at every login.
OIDC_ISSUER = envurl("OIDC_ISSUER")
OIDC_CLIENT_ID = envstr("OIDC_CLIENT_ID")
OIDC_CLIENT_SECRET = secret("OIDC_CLIENT_SECRET")
OIDC_GROUPS_CLAIM = envstr("OIDC_GROUPS_CLAIM", "groups").strip()
OIDC_GROUP_MAP = pairs("OIDC_GROUP_MAP")
OIDC_RP_SCOPES = envstr("OIDC_SCOPES", "openid email profile")
# An SSO session ends after this long, whatever the cookie says: the user signs in at the provider
# again, which refuses people it no longer knows and brings their current groups.
OIDC_SESSION_MAX_AGE = envint("OIDC_SESSION_MAX_AGE", 8 * 3600, minimum=60)
SSO_ENABLED = bool(OIDC_ISSUER)
LOCAL_LOGIN = envbool("LOCAL_LOGIN", True)
if SSO_ENABLED and not (OIDC_CLIENT_ID and OIDC_CLIENT_SECRET):
    raise ImproperlyConfigured(
        "Environment variable OIDC_ISSUER is set: OIDC_CLIENT_ID and OIDC_CLIENT_SECRET (or OIDC_CLIENT_SECRET_FILE) "
        "must be set too."
    )
if not re.fullmatch(r"[A-Za-z0-9_.:/-]{1,100}", OIDC_GROUPS_CLAIM):
    raise ImproperlyConfigured(f"Environment variable OIDC_GROUPS_CLAIM={OIDC_GROUPS_CLAIM!r} is not a claim name.")
if not LOCAL_LOGIN and not SSO_ENABLED:
    raise ImproperlyConfigured("Environment variable LOCAL_LOGIN=0 needs single sign-on: set OIDC_ISSUER.")
# mozilla-django-oidc's own settings, derived from ours.
OIDC_RP_CLIENT_ID = OIDC_CLIENT_ID
OIDC_RP_CLIENT_SECRET = OIDC_CLIENT_SECRET
OIDC_RP_SIGN_ALGO = envstr("OIDC_SIGN_ALGO", "RS256")
OIDC_USE_NONCE = True
OIDC_USE_PKCE = True
OIDC_PKCE_CODE_CHALLENGE_METHOD = "S256"
OIDC_AUTHENTICATION_CALLBACK_URL = "oidc_callback"
OIDC_TIMEOUT = envint("OIDC_TIMEOUT_SECONDS", 10, minimum=1)
# The authorize view reads these at start; portal.sso sets them from discovery per request.
OIDC_OP_AUTHORIZATION_ENDPOINT = ""
OIDC_OP_TOKEN_ENDPOINT = ""
OIDC_OP_USER_ENDPOINT = ""

# Axes first (refuses locked-out logins), then SSO, then local passwords unless switched off.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    *(["portal.sso.Backend"] if SSO_ENABLED else []),
    *(["django.contrib.auth.backends.ModelBackend"] if LOCAL_LOGIN else []),
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

# HTTPS hardening is on by default when PORTAL_URL is https:// (production); each part can be
# turned off on its own. `manage.py check --deploy` passes with the README's production settings.
HTTPS = PORTAL_URL.startswith("https://")
SESSION_COOKIE_SECURE = envbool("SECURE_COOKIES", HTTPS)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
# No script reads the CSRF cookie: forms carry the token.
CSRF_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = envint("SESSION_COOKIE_AGE", 12 * 3600, minimum=60)
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", HTTPS)
# Kubelet probes and Prometheus reach the pod directly over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 365 * 24 * 3600 if HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Proxies in front of the portal (IPs or CIDRs). Only their X-Forwarded-For / -Proto headers are
# believed (portal.middleware.ClientAddressMiddleware); from anyone else they are dropped, so the
# audit log and login throttling see the real peer, not an address a client claims.
TRUSTED_PROXIES = networks("TRUSTED_PROXIES", "")
# Behind a TLS-terminating proxy: the header it sets to "https" (e.g. X-Forwarded-Proto).
_ssl_header = header_name("SECURE_PROXY_SSL_HEADER", "")
if _ssl_header:
    if not TRUSTED_PROXIES:
        raise ImproperlyConfigured(
            "Environment variable SECURE_PROXY_SSL_HEADER needs TRUSTED_PROXIES: the proxies allowed to set it."
        )
    SECURE_PROXY_SSL_HEADER = (_ssl_header, "https")
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

# Outside systems (each optional: an empty URL means "not configured").
JENKINS_URL = envurl("JENKINS_URL")
JENKINS_USER = envstr("JENKINS_USER")
JENKINS_TOKEN = secret("JENKINS_TOKEN")
JENKINS_WEBHOOK_SECRET = secret("JENKINS_WEBHOOK_SECRET")
# How often a follower polls Jenkins, how it backs off on errors, and how long one job follows
# before handing over to a fresh one (so no worker is held for hours).
JENKINS_POLL_SECONDS = envint("JENKINS_POLL_SECONDS", 1, minimum=1)
JENKINS_FOLLOW_SLICE_SECONDS = envint("JENKINS_FOLLOW_SLICE_SECONDS", 300, minimum=0)
GITHUB_API_URL = envurl("GITHUB_API_URL")
GITHUB_TOKEN = secret("GITHUB_TOKEN")
GITHUB_WEBHOOK_SECRET = secret("GITHUB_WEBHOOK_SECRET")
GRAFANA_URL = envurl("GRAFANA_URL")
GRAFANA_TOKEN = secret("GRAFANA_TOKEN")
SLACK_WEBHOOK_URL = secret("SLACK_WEBHOOK_URL")
# Approvals from Slack: a Slack app with a bot token (chat:write, users:read, users:read.email)
# posts approval requests with buttons to SLACK_CHANNEL and updates them in place; its
# interactivity requests to /hooks/slack/ are verified with the app's signing secret.
SLACK_BOT_TOKEN = secret("SLACK_BOT_TOKEN")
SLACK_SIGNING_SECRET = secret("SLACK_SIGNING_SECRET")
SLACK_CHANNEL = envstr("SLACK_CHANNEL")
SLACK_API_URL = envurl("SLACK_API_URL", "https://slack.com/api/")
if bool(SLACK_BOT_TOKEN) != bool(SLACK_CHANNEL):
    raise ImproperlyConfigured(
        "Environment variables SLACK_BOT_TOKEN and SLACK_CHANNEL go together (approvals from Slack): "
        "set both or neither."
    )
METRICS_TOKEN = secret("METRICS_TOKEN")
PROMETHEUS_URL = envurl("PROMETHEUS_URL")
# Verified rollouts (releases/verdicts.py): one verify job run per interval probes the service
# (PROBE_REQUESTS requests) and evaluates its Prometheus checks at most every CHECK_INTERVAL.
VERIFY_INTERVAL_SECONDS = envint("VERIFY_INTERVAL_SECONDS", 1, minimum=1)
CHECK_INTERVAL_SECONDS = envint("CHECK_INTERVAL_SECONDS", 5, minimum=1)
PROBE_REQUESTS = envint("PROBE_REQUESTS", 3, minimum=1)

# Per-process memory cache. What it holds (GitHub changelogs keyed by sha pairs) is immutable
# and cheap to fetch again, and a memory cache cannot fail: a Redis-backed one would turn a
# Redis outage into errors on every page that shows a changelog.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "pampam",
        "OPTIONS": {"MAX_ENTRIES": 2000},
    },
    # Rendered page fragments (plumbing/fragments.py), per process: keyed by freshness tokens
    # kept in the database, so every process drops a stale one at the same moment.
    "fragments": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "pampam-fragments",
        "OPTIONS": {"MAX_ENTRIES": 1000},
    },
}

# The watcher writes a heartbeat; /readyz fails when it is older than this.
WATCHER_STALE_SECONDS = envint("WATCHER_STALE_SECONDS", 60, minimum=1)
RECONCILE_INTERVAL_SECONDS = envint("RECONCILE_INTERVAL_SECONDS", 30, minimum=1)
HISTORY_PAGE_SIZE = envint("HISTORY_PAGE_SIZE", 50, minimum=1)

# The REST API (releases/api/): bearer tokens for scripts, the session (with CSRF) for the browser.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # First, so an unauthenticated request gets 401 with `WWW-Authenticate: Bearer`.
        "releases.api.auth.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["releases.api.auth.ScopePermission"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "releases.api.errors.handle",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Pampam release portal API",
    "DESCRIPTION": (
        "Releases, deployments, approvals, builds, freezes and locks, under the same rules as the pages. "
        "Send `Authorization: Bearer <token>` (make a token on your API tokens page or with "
        "`python manage.py create_api_token`). Every error has `detail` and `reasons`; a 400 also has `errors` "
        "(field → messages). A rule saying no is a 403 (409 when something else is under way)."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "DeploymentStateEnum": "releases.states.CHOICES",
        "BuildStateEnum": "releases.api.schema.BUILD_STATES",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "releases.api.schema.describe_path_parameters",
        "releases.api.schema.add_links",
    ],
}
# The longest a client may wait on `GET /api/v1/deployments/<id>/?wait=N`, and how many may
# wait at once in one web process (past that, answers come at once and clients poll again).
API_LONG_POLL_MAX_SECONDS = envint("API_LONG_POLL_MAX_SECONDS", 60, minimum=1)
API_LONG_POLL_MAX_WAITERS = envint("API_LONG_POLL_MAX_WAITERS", 200, minimum=1)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}
