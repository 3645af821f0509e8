"""ftvp settings: one module, every value from the environment (see .env.example).

Embedded defaults (no variables set): SQLite in FTVP_DATA_DIR, Celery over kombu's filesystem
transport (no server), the local SmolLM2 model and the packaged MiniLM embedder.
Production shape: DATABASE_URL (PostgreSQL) and REDIS_URL (broker and shared limits).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

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
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Login everywhere but the login page, static files and the API (DRF answers 401 there).
    "evaluations.access.LoginRequiredMiddleware",
    "evaluations.signals.ActorMiddleware",
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

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("FTVP_SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True

REST_FRAMEWORK = {
    # API tokens first: a request without credentials gets a 401 with a Bearer challenge. Session
    # auth serves the browser (the docs page); Basic stays for scripts written before tokens.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "evaluations.api.auth.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.BasicAuthentication",
    ],
    # The caller's role decides, as on the pages: views declare `action_permissions` (roles.py).
    "DEFAULT_PERMISSION_CLASSES": ["evaluations.api.permissions.RolePermission"],
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
    "workers.tasks.finetune": {"queue": "training"},
    "workers.tasks.scheduled_run": {"queue": "scoring"},  # sent by beat; only creates the run
}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TIMEZONE = TIME_ZONE

# --- ftvp ---------------------------------------------------------------------------------------
FTVP_BATCH_SIZE = env_int("FTVP_BATCH_SIZE", 16, minimum=1)
FTVP_STALL_SECONDS = env_int("FTVP_STALL_SECONDS", 120, minimum=5)
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
FTVP_HTTP_RETRIES = env_int("FTVP_HTTP_RETRIES", 4, minimum=0)
# Score trends: the Mann-Kendall test looks at this many latest runs of an arm's series (at least
# 6: fewer can never reach the test's significance level of 0.01).
FTVP_TREND_RUNS = env_int("FTVP_TREND_RUNS", 14, minimum=6)

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
