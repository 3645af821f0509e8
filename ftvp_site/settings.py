"""ftvp settings: one module, every value from the environment (see .env.example).

Embedded defaults (no variables set): SQLite in FTVP_DATA_DIR, Celery over kombu's filesystem
transport (no server), the local SmolLM2 model and the packaged MiniLM embedder.
Production shape: DATABASE_URL (PostgreSQL) and REDIS_URL (broker and shared limits).
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean; use 1/0, true/false, yes/no or on/off")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


# Under pytest (which sets PYTEST_VERSION) the default data directory is a separate one.
_default_data = BASE_DIR / "var" / ("test" if os.environ.get("PYTEST_VERSION") else "")
DATA_DIR = Path(os.environ.get("FTVP_DATA_DIR") or _default_data).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("FTVP_DEBUG", False)
DATABASE_URL = os.environ.get("DATABASE_URL", "").strip()
REDIS_URL = os.environ.get("REDIS_URL", "").strip()
EMBEDDED = not REDIS_URL


def _secret_key() -> str:
    key = os.environ.get("FTVP_SECRET_KEY", "").strip()
    if key:
        if len(key) < 32:
            raise ImproperlyConfigured("FTVP_SECRET_KEY must be at least 32 characters long")
        return key
    if DATABASE_URL:
        # A shared database means several processes, maybe on several machines: they must agree.
        raise ImproperlyConfigured(
            "FTVP_SECRET_KEY is not set. With DATABASE_URL set every web and worker process needs the "
            "same key: generate one with `python -c 'import secrets; print(secrets.token_urlsafe(50))'`."
        )
    # Embedded mode: a random key made once for this installation, kept in the data directory.
    path = DATA_DIR / "secret_key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("FTVP_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("FTVP_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "evaluations",
]

MIDDLEWARE = [
    "evaluations.middleware.ContentSecurityPolicyMiddleware",  # first: every response gets the header
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "evaluations.middleware.LoginThrottleMiddleware",  # a login refused for a lockout: a 429 page
    # Login everywhere but the login page, static files and the API (DRF answers 401 there).
    "evaluations.middleware.LoginRequiredMiddleware",
    "evaluations.middleware.ActorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "ftvp_site.urls"
WSGI_APPLICATION = "ftvp_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("FTVP_SQLITE_PATH") or DATA_DIR / "ftvp.sqlite3",
            # The web process and the worker write concurrently: WAL, a busy timeout and
            # IMMEDIATE transactions keep SQLite from failing with "database is locked".
            "OPTIONS": {
                "timeout": 30,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            "TEST": {"NAME": os.environ.get("FTVP_TEST_SQLITE") or DATA_DIR / "test.sqlite3"},
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# Django's, refusing logins for a username or address with too many failures (evaluations/security.py).
AUTHENTICATION_BACKENDS = ["evaluations.security.ThrottledModelBackend"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "evaluations:home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("FTVP_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("FTVP_STATIC_ROOT") or DATA_DIR / "static")
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# Files ftvp writes (fine-tuned adapters); never served as static files.
MEDIA_ROOT = Path(os.environ.get("FTVP_MEDIA_ROOT") or DATA_DIR / "media")
MEDIA_ROOT.mkdir(parents=True, exist_ok=True)
# Chart.js and htmx come from the npm registry at install time (package.json); never committed.
NODE_MODULES = BASE_DIR / "node_modules"
STATICFILES_DIRS = [
    (prefix, NODE_MODULES / package / "dist")
    for prefix, package in (("vendor/chart.js", "chart.js"), ("vendor/htmx", "htmx.org"))
    if (NODE_MODULES / package / "dist").is_dir()
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FTVP_MAX_UPLOAD_BYTES = env_int("FTVP_MAX_UPLOAD_BYTES", 50 * 1024 * 1024, minimum=1024)
# Names of the environment variables endpoints may read API keys from and alert channels webhook
# URLs from (comma list); empty: any name except ftvp's own settings (see services/endpoints.py).
FTVP_ENV_ALLOWLIST = env_list("FTVP_ENV_ALLOWLIST", [])

# --- HTTPS and browser security (see README "Production shape") -----------------------------------
# FTVP_HTTPS=1 when users reach ftvp over HTTPS (directly or through a TLS-terminating proxy): secure
# session and CSRF cookies, HSTS, and plain-http requests redirected to https. Off for `make demo`
# (http://127.0.0.1:8000). FTVP_SECURE_COOKIES (older) turns on the secure cookies alone.
FTVP_HTTPS = env_bool("FTVP_HTTPS", False)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = FTVP_HTTPS or env_bool("FTVP_SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# HSTS: browsers use https only for this long after a visit (a year by default; 0 turns it off).
SECURE_HSTS_SECONDS = env_int("FTVP_HSTS_SECONDS", 365 * 24 * 3600, minimum=0) if FTVP_HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("FTVP_HSTS_INCLUDE_SUBDOMAINS", True)
# Preloading asks browsers to ship the domain in their HSTS list: a commitment for the whole domain
# that only its owner can make, so it is off unless asked for (docs/decisions.md).
SECURE_HSTS_PRELOAD = env_bool("FTVP_HSTS_PRELOAD", False)
SECURE_SSL_REDIRECT = FTVP_HTTPS and env_bool("FTVP_SSL_REDIRECT", True)
# Behind a TLS-terminating proxy Django sees plain http: name the header the proxy sets to "https"
# (e.g. X-Forwarded-Proto), and make sure the proxy overwrites it on every request.
_proxy_ssl_header = os.environ.get("FTVP_PROXY_SSL_HEADER", "").strip()
if _proxy_ssl_header:
    if not re.fullmatch(r"[A-Za-z0-9-]+", _proxy_ssl_header):
        raise ImproperlyConfigured(
            f"FTVP_PROXY_SSL_HEADER={_proxy_ssl_header!r} must be a header name, e.g. X-Forwarded-Proto"
        )
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _proxy_ssl_header.upper().replace("-", "_"), "https")
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD or not FTVP_HTTPS else ["security.W021"]
# Proxies in front of ftvp that append the client's address to X-Forwarded-For (login throttling
# counts failures per client address); 0: the address is the connection's.
FTVP_TRUSTED_PROXIES = env_int("FTVP_TRUSTED_PROXIES", 0, minimum=0)
# Login throttling: after this many failed logins for one username within the window, logins
# (pages, admin, API Basic auth) are refused with 429 until the window has passed.
FTVP_LOGIN_FAILURE_LIMIT = env_int("FTVP_LOGIN_FAILURE_LIMIT", 5, minimum=1)
FTVP_LOGIN_WINDOW_SECONDS = env_int("FTVP_LOGIN_WINDOW_SECONDS", 15 * 60, minimum=1)
# From one address (many usernames tried): ten times as many by default, since behind a proxy not
# declared in FTVP_TRUSTED_PROXIES (and in the demo) every user shares one address.
FTVP_LOGIN_ADDRESS_FAILURE_LIMIT = env_int(
    "FTVP_LOGIN_ADDRESS_FAILURE_LIMIT", 10 * FTVP_LOGIN_FAILURE_LIMIT, minimum=1
)
# Endpoints' base URLs must start with one of these (comma list of URL prefixes, compared by scheme,
# host, port and path); empty: any URL. E.g. https://api.openai.com/v1,http://127.0.0.1:8080/
FTVP_ENDPOINT_URL_ALLOWLIST = env_list("FTVP_ENDPOINT_URL_ALLOWLIST", [])
for _prefix in FTVP_ENDPOINT_URL_ALLOWLIST:
    _parts = urlsplit(_prefix)
    if _parts.scheme not in {"http", "https"} or not _parts.hostname or _parts.query or _parts.fragment:
        raise ImproperlyConfigured(
            f"FTVP_ENDPOINT_URL_ALLOWLIST: {_prefix!r} is not an http(s) URL prefix; give e.g. "
            "https://api.openai.com/v1 or http://127.0.0.1:8080/ (comma-separated)"
        )

# The default cache is per process (cached page figures). Login throttling counts failures in a
# cache every web process shares: Redis when there is one, else files in the data directory.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "logins": (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": (os.environ.get("FTVP_BROKER_PREFIX", "").strip() + "ftvp-logins"),
            "OPTIONS": {"socket_timeout": 5, "socket_connect_timeout": 5},
        }
        if REDIS_URL
        else {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(DATA_DIR / "cache" / "logins"),
            # Past MAX_ENTRIES the file cache deletes a random third of its files, live counts too:
            # a guesser inventing usernames could reset a count that way (300 by default).
            "OPTIONS": {"MAX_ENTRIES": 200_000},
        }
    ),
}

REST_FRAMEWORK = {
    # API tokens first: a request without credentials gets a 401 with a Bearer challenge. Session
    # auth serves the browser (the docs page); Basic stays for scripts written before tokens.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "evaluations.api.auth.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
        "evaluations.api.auth.ThrottledBasicAuthentication",
    ],
    # The caller's role decides, as on the pages: views declare `action_permissions` (roles.py).
    "DEFAULT_PERMISSION_CLASSES": ["evaluations.api.permissions.RolePermission"],
    # JSON bodies with numbers JSON or the database cannot hold (NaN, Infinity, 1e400) get a 400
    # naming the field (evaluations/api/parsers.py). DRF's defaults otherwise.
    "DEFAULT_PARSER_CLASSES": [
        "evaluations.api.parsers.JsonSafeParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Every error is {"detail": ...}; validation errors add their per-field messages as "errors".
    "EXCEPTION_HANDLER": "evaluations.api.errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ftvp API",
    "DESCRIPTION": "Evaluation runs, suites and results: is prompting enough, or does fine-tuning pay off?",
    "VERSION": "0.1.0",
    "SERVE_PERMISSIONS": ["evaluations.api.permissions.RolePermission"],  # the schema: a read
    # The docs page (/api/docs/) serves Swagger UI from drf-spectacular-sidecar's static files: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "EndpointKindEnum": "evaluations.models.EndpointKind",
        "StrategyKindEnum": "evaluations.models.StrategyKind",
        "FindingKindEnum": "evaluations.models.FindingKind",
        "SignOffStatusEnum": "evaluations.models.SignOffStatus",
        "RunStatusEnum": "evaluations.models.RunStatus",
        "SplitEnum": "evaluations.models.Split",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "evaluations.api.schema.document_errors",
    ],
}

# --- Celery -------------------------------------------------------------------------------------
BROKER_DIR = DATA_DIR / "broker"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # Unacknowledged messages come back after this long; the stalled-batch sweep recovers a
        # killed worker's batch much sooner (FTVP_STALL_SECONDS).
        "visibility_timeout": env_int("FTVP_VISIBILITY_TIMEOUT", 3600, minimum=10),
    }
    # Tests keep their messages apart from a real installation's on the same Redis.
    prefix = os.environ.get(
        "FTVP_BROKER_PREFIX", "ftvp-test:" if os.environ.get("PYTEST_VERSION") else ""
    ).strip()
    if prefix:
        CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"] = prefix
else:
    CELERY_BROKER_URL = "filesystem://localhost/"
    CELERY_BROKER_TRANSPORT = "workers.fs_transport:Transport"  # atomic writes; see the module
    for sub in ("queue", "processed", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
        "polling_interval": 0.5,
    }
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "scoring"
CELERY_TASK_ROUTES = {
    "workers.tasks.run_batch": {"queue": "llm"},
    "workers.tasks.optimize_fewshot": {"queue": "llm"},  # the few-shot search calls the model
    "workers.tasks.synthesize": {"queue": "llm"},  # synthetic examples: the model writes them
    "workers.tasks.shadow_sweep": {"queue": "llm"},  # shadow evaluation: the candidate is called
    "workers.tasks.finetune": {"queue": "training"},
    "workers.tasks.finetune_poll": {"queue": "scoring"},  # hosted fine-tuning: a few short HTTP calls
    "workers.tasks.scheduled_run": {"queue": "scoring"},  # sent by beat; only creates the run
}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TIMEZONE = TIME_ZONE

# --- ftvp ---------------------------------------------------------------------------------------
FTVP_BATCH_SIZE = env_int("FTVP_BATCH_SIZE", 16, minimum=1)
FTVP_STALL_SECONDS = env_int("FTVP_STALL_SECONDS", 120, minimum=5)
# How long a running run's counts (results so far, scored, errors) are reused by its pages: every user
# watching a big run polls its live part every 2 s, and each count scans the run's results.
FTVP_LIVE_SECONDS = env_int("FTVP_LIVE_SECONDS", 2, minimum=0)
FTVP_WORKER_BEAT_SECONDS = env_int("FTVP_WORKER_BEAT_SECONDS", 5, minimum=1)
FTVP_EMBEDDER = os.environ.get("FTVP_EMBEDDER", "minilm").strip() or "minilm"
if FTVP_EMBEDDER not in {"minilm", "hashing"} and not (Path(FTVP_EMBEDDER) / "modules.json").is_file():
    raise ImproperlyConfigured(
        f"FTVP_EMBEDDER={FTVP_EMBEDDER!r}: use minilm (the default, all-MiniLM-L6-v2 from its package), "
        "the folder of a sentence-transformers model (it holds modules.json), or hashing (tests only)"
    )
# The endpoint (by name) that grades llm-rubric assertions; unset: llm-rubric fails with a message.
FTVP_JUDGE_ENDPOINT = os.environ.get("FTVP_JUDGE_ENDPOINT", "").strip()
FTVP_LOCAL_MAX_NEW_TOKENS = env_int("FTVP_LOCAL_MAX_NEW_TOKENS", 96, minimum=1)
FTVP_LOCAL_BATCH = env_int("FTVP_LOCAL_BATCH", 16, minimum=1)
# Hosted fine-tuning jobs: seconds to the first look at the provider after a change (then doubling
# while nothing changes, up to 300).
FTVP_FINETUNE_POLL_SECONDS = env_int("FTVP_FINETUNE_POLL_SECONDS", 5, minimum=1)
FTVP_HTTP_RETRIES = env_int("FTVP_HTTP_RETRIES", 4, minimum=0)
# Score trends: the Mann-Kendall test looks at this many latest runs of an arm's series (at least
# 6: fewer can never reach the test's significance level of 0.01).
FTVP_TREND_RUNS = env_int("FTVP_TREND_RUNS", 14, minimum=6)

# --- the capture proxy (docs/capture.md) --------------------------------------------------------------
# JSON keys dropped from captured requests and responses (at any depth) before anything is stored.
FTVP_CAPTURE_DROP_FIELDS = env_list("FTVP_CAPTURE_DROP_FIELDS", [])
# Patterns masked in captured text before anything is stored (email, card, or none); configured
# secrets always are.
FTVP_CAPTURE_MASK = [m for m in env_list("FTVP_CAPTURE_MASK", ["email", "card"]) if m != "none"]
for _mask in FTVP_CAPTURE_MASK:
    if _mask not in ("email", "card"):
        raise ImproperlyConfigured(f"FTVP_CAPTURE_MASK: {_mask!r} is not a known pattern (email, card)")
# How long the proxy trusts what it read about a token or an endpoint: a revocation takes this long.
FTVP_CAPTURE_CACHE_SECONDS = env_int("FTVP_CAPTURE_CACHE_SECONDS", 5, minimum=0)
# Captured calls older than this many days are deleted by the drain (0: kept for ever).
FTVP_TRAFFIC_RETENTION_DAYS = env_int("FTVP_TRAFFIC_RETENTION_DAYS", 90, minimum=0)
# The proxy's durable spool (recorded calls waiting for the database): a local disk of the proxy's host.
FTVP_SPOOL_DIR = Path(os.environ.get("FTVP_SPOOL_DIR") or DATA_DIR / "spool")

# --- alerts (e-mail and webhooks for findings) -----------------------------------------------------
# The web app's absolute URL, for the links in alerts (workers have no request to build them from).
FTVP_BASE_URL = (os.environ.get("FTVP_BASE_URL", "").strip() or "http://localhost:8000").rstrip("/")
if not FTVP_BASE_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured(
        f"FTVP_BASE_URL={FTVP_BASE_URL!r} must be an absolute http(s) URL, e.g. https://ftvp.example.com"
    )
FTVP_WEBHOOK_TIMEOUT = env_int("FTVP_WEBHOOK_TIMEOUT", 10, minimum=1)
_email_host = os.environ.get("EMAIL_HOST", "").strip()
EMAIL_HOST = _email_host or "localhost"
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")  # never logged nor shown
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "").strip() or "ftvp@localhost"
# SMTP when EMAIL_HOST is set; otherwise e-mails are printed to the console (the worker's log).
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "").strip() or (
    "django.core.mail.backends.smtp.EmailBackend"
    if _email_host
    else "django.core.mail.backends.console.EmailBackend"
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("FTVP_LOG_LEVEL", "INFO")},
    "loggers": {
        # The HTTP clients log every request at INFO: one line per model call, when a run makes
        # thousands (the openai SDK uses httpx, or its fork httpx2, depending on its version).
        "httpx": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        "httpcore2": {"level": "WARNING"},
        "openai": {"level": "WARNING"},
        "transformers": {"level": "ERROR"},
    },
}

# Offline by construction: models come from installed packages, never from a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
