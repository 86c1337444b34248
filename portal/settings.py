"""Settings, read from the environment and checked strictly at start-up.

Every variable is documented in docs/configuration.md. A missing required
value or a malformed one stops the process with ImproperlyConfigured.
"""

import re
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from accounts import resources as _resources
from accounts.quantities import QuantityError

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

# State that belongs to this machine: the SQLite database, local clusters' state
# directories. Created with mode 0700 by the scripts that use it.
VAR_DIR = Path(env.str("VCPORTAL_VAR_DIR", default=str(BASE_DIR / "var")))

# `make run` generates its secrets and starts a private Redis, and keeps them in these
# files under VAR_DIR (mode 0600). A variable that is unset falls back to its file, so
# every manage.py command works in a second terminal with no variable set. Production
# (the image's VAR_DIR holds no such files) still fails fast without the variables.
MAKE_RUN_FILES = {
    "DJANGO_SECRET_KEY": "secret-key",
    "FIELD_ENCRYPTION_KEYS": "fernet-key",
    "REDIS_URL": "redis-url",
    "VCPORTAL_GATEWAY_URL": "gateway-url",
    "VCPORTAL_GATEWAY_CA_FILE": "gateway-ca-file",
}


def _env_or_make_run_file(name: str) -> str:
    value = env.str(name, default="")
    if value or name not in MAKE_RUN_FILES:
        return value
    path = VAR_DIR / MAKE_RUN_FILES[name]
    return path.read_text().strip() if path.is_file() else ""


def _required(name: str) -> str:
    value = _env_or_make_run_file(name)
    if not value:
        raise ImproperlyConfigured(f"{name} must be set (see docs/configuration.md)")
    return value


_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


def _bool(name: str, default: bool) -> bool:
    value = env.str(name, default=str(default)).strip().lower()
    if value not in _TRUE | _FALSE:
        raise ImproperlyConfigured(f"{name}={value!r}: use true or false")
    return value in _TRUE


def _int(name: str, default: int) -> int:
    value = env.str(name, default=str(default)).strip()
    if not value.isdigit():
        raise ImproperlyConfigured(f"{name}={value!r}: must be a non-negative whole number")
    return int(value)


_RATE_PERIODS = {"s", "sec", "second", "m", "min", "minute", "h", "hour", "d", "day"}


def _rate(name: str, default: str) -> str:
    """A DRF throttle rate such as `60/min`, checked here rather than at the first request."""
    value = env.str(name, default=default).strip()
    count, _, period = value.partition("/")
    if not count.isdigit() or period not in _RATE_PERIODS:
        raise ImproperlyConfigured(f"{name}={value!r}: use <number>/<s|min|hour|day>, e.g. 60/min")
    return value


SECRET_KEY = _required("DJANGO_SECRET_KEY")
DEBUG = _bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "django_htmx",
    "template_partials",
    "django_celery_beat",
    "axes",
    "localkube",
    "accounts",
    "vclusters",
    "provisioning",
    "gitops",
    "syncer",
    "gateway",
]

MIDDLEWARE = [
    "portal.middleware.HealthMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "portal.middleware.DatabaseBusyMiddleware",
    # Last, as django-axes requires: turns a refused login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

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
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'vcportal.sqlite3'}"),
}
# Connections are not kept between requests (CONN_MAX_AGE 0): under ASGI each request
# runs its database work in a context of its own, and a kept connection stays with it
# (the load test used up PostgreSQL's 100 connections in under a minute). psycopg's pool
# was tried (2026-12-06) and reverted: a connection taken by a thread that ends without
# closing it is never given back, and the test process, whose threads do that, ran its
# pool dry within the suite.
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A connection attempt that gets no answer gives up after these seconds and the caller
    # retries with a new one. Without it a pod that sends its first SYN to a Service before
    # kube-proxy has programmed it keeps retrying that SYN on the same stale conntrack entry
    # for the kernel's whole ~127 s (the chart's migration Job lost two minutes to it on
    # every install). `?connect_timeout=` in DATABASE_URL wins.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
# Seconds a write waits for the embedded database's lock before the request answers 503.
VCPORTAL_SQLITE_BUSY_TIMEOUT = _int("VCPORTAL_SQLITE_BUSY_TIMEOUT", default=20)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded database serves the web and gateway processes, the worker and beat
    # at once. WAL lets readers run beside the one writer; IMMEDIATE takes the write
    # lock when a transaction begins, since a transaction that read first and must then
    # upgrade its lock fails at once when another process writes, whatever the timeout;
    # and a writer waits up to the busy timeout for its turn.
    DATABASES["default"].setdefault("OPTIONS", {}).update({
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": VCPORTAL_SQLITE_BUSY_TIMEOUT,
    })
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# django-axes watches every password login (form and Django admin) and refuses one
# (username, client address) pair after too many failures for the cool-off time.
# API tokens never pass through it, so a locked-out user's tokens keep working.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = _int("VCPORTAL_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(seconds=_int("VCPORTAL_LOGIN_COOLOFF", default=15 * 60))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "accounts.audit.client_ip"
AXES_LOCKOUT_CALLABLE = "accounts.lockout.lockout_response"
# No start-up banner on every process and command; lockouts are still logged.
AXES_VERBOSE = False

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

# Behind a TLS-terminating proxy (docker-compose production setup) cookies must be
# marked secure; locally over plain http they must not be.
SESSION_COOKIE_SECURE = _bool("DJANGO_SECURE_COOKIES", default=False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
BEHIND_PROXY = _bool("DJANGO_BEHIND_PROXY", default=False)
if BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Audit events record the client address; trust X-Forwarded-For only behind a proxy
# we control, otherwise any client could forge it.
VCPORTAL_TRUST_X_FORWARDED_FOR = BEHIND_PROXY


def _fernet_keys() -> list[str]:
    from cryptography.fernet import Fernet

    keys = [key.strip() for key in _env_or_make_run_file("FIELD_ENCRYPTION_KEYS").split(",") if key.strip()]
    if not keys:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEYS must be set: a comma-separated list of Fernet keys, "
            "newest first (see docs/configuration.md)"
        )
    for key in keys:
        try:
            Fernet(key)
        except (ValueError, TypeError) as exc:
            raise ImproperlyConfigured(f"FIELD_ENCRYPTION_KEYS holds an invalid Fernet key: {exc}") from None
    return keys


FIELD_ENCRYPTION_KEYS = _fernet_keys()

# What a vcluster may be created with. The first version listed is the default.
VCPORTAL_KUBERNETES_VERSIONS = env.list("VCPORTAL_KUBERNETES_VERSIONS", default=["v1.37.2"])
if not VCPORTAL_KUBERNETES_VERSIONS:
    raise ImproperlyConfigured("VCPORTAL_KUBERNETES_VERSIONS must list at least one version")
VCPORTAL_DEFAULT_VCLUSTER_RESOURCES = {
    "cpu": env.str("VCPORTAL_DEFAULT_CPU", default="1"),
    "memory": env.str("VCPORTAL_DEFAULT_MEMORY", default="2Gi"),
    "storage": env.str("VCPORTAL_DEFAULT_STORAGE", default="10Gi"),
    "pods": _int("VCPORTAL_DEFAULT_PODS", default=50),
}
for _name, _value in VCPORTAL_DEFAULT_VCLUSTER_RESOURCES.items():
    try:
        _resources.BY_NAME[_name].parse(_value)
    except QuantityError as exc:
        raise ImproperlyConfigured(f"VCPORTAL_DEFAULT_{_name.upper()}={_value!r}: {exc}") from None
# Request bodies (API and forms) above this size are refused with 400 before parsing.
DATA_UPLOAD_MAX_MEMORY_SIZE = _int("VCPORTAL_MAX_BODY_BYTES", default=64 * 1024)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "portal.api.Pagination",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "portal.api.exception_handler",
    # Per client address for anonymous requests and failed bearer tokens (see
    # accounts.authentication), per user for everyone else; kept in CACHES, and
    # paused while the cache is down (portal/throttling.py).
    "DEFAULT_THROTTLE_CLASSES": [
        "portal.throttling.AnonRateThrottle",
        "portal.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": _rate("VCPORTAL_API_THROTTLE_ANON", default="60/min"),
        "user": _rate("VCPORTAL_API_THROTTLE_USER", default="1200/min"),
    },
    # The client address is the last X-Forwarded-For entry behind our proxy, else the
    # peer: a client cannot dodge its throttle by sending the header itself.
    "NUM_PROXIES": 1 if BEHIND_PROXY else 0,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "vcportal API",
    "DESCRIPTION": "Teams, quotas and virtual Kubernetes clusters. Authenticate with "
    "`Authorization: Bearer <token>` (create one on the Tokens page or with "
    "`manage.py create_api_token`).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    # Swagger UI served from our own static files: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "portal.openapi.document_errors"],
}

REDIS_URL = _env_or_make_run_file("REDIS_URL") or "redis://127.0.0.1:6379/0"
# Shared by every web process, so API throttles hold across uvicorn workers.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "vcportal-cache",
        "OPTIONS": {"pool_class": "portal.cache.SharedConnectionPool"},
    },
}
CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 15 * 60
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# Local Kubernetes: where the embedded host cluster keeps its state. The binaries
# are found through VCPORTAL_KUBE_BIN_DIR (read by localkube.binaries).
HOSTCLUSTER_STATE_DIR = Path(
    env.str("VCPORTAL_HOSTCLUSTER_DIR", default=str(VAR_DIR / "hostcluster"))
)

# Provisioning. The host name tenants' kubeconfigs use to reach their vcluster's
# API server, and any further names its certificate must carry.
VCPORTAL_VCLUSTER_HOST = env.str("VCPORTAL_VCLUSTER_HOST", default="127.0.0.1")
VCPORTAL_VCLUSTER_SANS = [VCPORTAL_VCLUSTER_HOST, *env.list("VCPORTAL_VCLUSTER_EXTRA_SANS", default=[])]
VCPORTAL_CONTROL_PLANE_START_TIMEOUT = _int("VCPORTAL_CONTROL_PLANE_START_TIMEOUT", default=90)
# The `kubernetes` runtime's image where a host cluster names none; empty: the one
# `make images` built and pushed to the local registry.
VCPORTAL_RUNTIME_IMAGE = env.str("VCPORTAL_RUNTIME_IMAGE", default="")
# The CoreDNS image each vcluster runs (its cluster DNS); empty: the one `make images` built.
VCPORTAL_CLUSTER_DNS_IMAGE = env.str("VCPORTAL_CLUSTER_DNS_IMAGE", default="")
# An image with `sh` and `sed` (busybox) that writes a tenant pod's /etc/hosts with its
# virtual names (pods with a subdomain, docs/syncer.md); empty: the busybox `make images` built.
VCPORTAL_HOSTS_IMAGE = env.str("VCPORTAL_HOSTS_IMAGE", default="")
VCPORTAL_NAMESPACE_DELETE_TIMEOUT = _int("VCPORTAL_NAMESPACE_DELETE_TIMEOUT", default=60)
# A readable name for this portal on the host clusters it uses (the vcportal.io/installation
# label), taken when its database first records its identity; empty: `vcp-<token>`,
# generated (provisioning.installation, docs/installation.md).
VCPORTAL_INSTALLATION = env.str("VCPORTAL_INSTALLATION", default="")
# An in-cluster portal (the Helm chart) binds this ClusterRole to its ServiceAccount
# (`namespace/name`) in each namespace it creates, its only rights inside namespaces.
VCPORTAL_NAMESPACE_ROLE = env.str("VCPORTAL_NAMESPACE_ROLE", default="")
VCPORTAL_SERVICE_ACCOUNT = env.str("VCPORTAL_SERVICE_ACCOUNT", default="")
if bool(VCPORTAL_NAMESPACE_ROLE) != bool(re.fullmatch(r"[a-z0-9-.]+/[a-z0-9-.]+", VCPORTAL_SERVICE_ACCOUNT)):
    raise ImproperlyConfigured("VCPORTAL_NAMESPACE_ROLE needs VCPORTAL_SERVICE_ACCOUNT=<namespace>/<name>, and "
                               "VCPORTAL_SERVICE_ACCOUNT needs VCPORTAL_NAMESPACE_ROLE")
if VCPORTAL_INSTALLATION and not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?", VCPORTAL_INSTALLATION):
    raise ImproperlyConfigured("VCPORTAL_INSTALLATION must be lowercase letters, digits and '-', at most 40 "
                               "characters, starting and ending with a letter or digit (it names a namespace)")
# Transient errors in a row before a task gives up: provisioning fails, teardown
# becomes DeleteFailed; either waits for Retry.
VCPORTAL_MAX_TRANSIENT_RETRIES = _int("VCPORTAL_MAX_TRANSIENT_RETRIES", default=12)
# Seconds a worker holds a vcluster's lock without renewing it; a killed worker's
# work is resumed by another after at most this long.
VCPORTAL_VCLUSTER_LOCK_TTL = _int("VCPORTAL_VCLUSTER_LOCK_TTL", default=20)
VCPORTAL_RECONCILE_INTERVAL = _int("VCPORTAL_RECONCILE_INTERVAL", default=30)
# Metrics (docs/metrics.md): the bearer token a scraper presents to /metrics on the web
# and gateway ports (empty: no token asked, for a portal on loopback), and the
# `address:port` on which a Celery worker serves its own (empty: none).
VCPORTAL_METRICS_TOKEN = env.str("VCPORTAL_METRICS_TOKEN", default="")
VCPORTAL_WORKER_METRICS_ADDRESS = env.str("VCPORTAL_WORKER_METRICS_ADDRESS", default="")
if VCPORTAL_WORKER_METRICS_ADDRESS and not re.fullmatch(r"[0-9a-fA-F.:]+:[0-9]{1,5}", VCPORTAL_WORKER_METRICS_ADDRESS):
    raise ImproperlyConfigured("VCPORTAL_WORKER_METRICS_ADDRESS must be ADDRESS:PORT, e.g. 0.0.0.0:9540")
# Test-only fault injection: seconds each provisioning step sleeps after its effect
# and before its record (tests/provisioning/test_crash_safety.py). Keep 0.
VCPORTAL_FAULT_PAUSE_AFTER_STEP = env.float("VCPORTAL_FAULT_PAUSE_AFTER_STEP", default=0.0)
# ... only in the step of this name (empty: every step): the one a test kills the worker in.
VCPORTAL_FAULT_PAUSE_STEP = env.str("VCPORTAL_FAULT_PAUSE_STEP", default="")
# GitOps: the host cluster whose VirtualCluster objects the controller serves (empty:
# none), and the seconds between its passes.
VCPORTAL_GITOPS_CLUSTER = env.str("VCPORTAL_GITOPS_CLUSTER", default="local")
VCPORTAL_GITOPS_INTERVAL = _int("VCPORTAL_GITOPS_INTERVAL", default=5)
if not VCPORTAL_GITOPS_INTERVAL:
    raise ImproperlyConfigured("VCPORTAL_GITOPS_INTERVAL must be at least 1 (seconds)")
# Gateway (/kube/): lifetime of personal vcluster tokens, and how often what went
# through it is written to the database (off the request path).
VCPORTAL_GATEWAY_TOKEN_TTL = _int("VCPORTAL_GATEWAY_TOKEN_TTL", default=12 * 3600)
if not VCPORTAL_GATEWAY_TOKEN_TTL:
    raise ImproperlyConfigured("VCPORTAL_GATEWAY_TOKEN_TTL must be at least 1 (seconds)")
VCPORTAL_GATEWAY_FLUSH_INTERVAL = env.float("VCPORTAL_GATEWAY_FLUSH_INTERVAL", default=1.0)
# How long the gateway keeps a token's check in memory (0: never); any change to access
# clears it at once (gateway.grants), so this only bounds how old a kept row can be.
VCPORTAL_GATEWAY_GRANT_CACHE_SECONDS = env.float("VCPORTAL_GATEWAY_GRANT_CACHE_SECONDS", default=5.0)
# Expired and revoked gateway tokens are deleted this long after (gateway.tasks).
VCPORTAL_GATEWAY_TOKEN_RETENTION = _int("VCPORTAL_GATEWAY_TOKEN_RETENTION", default=7 * 24 * 3600)
# Where kubectl reaches the gateway when it is not the portal's own URL (kubectl sends
# tokens over HTTPS only), and the CA of its certificate when that is a private one.
VCPORTAL_GATEWAY_URL = _env_or_make_run_file("VCPORTAL_GATEWAY_URL")
VCPORTAL_GATEWAY_CA_FILE = _env_or_make_run_file("VCPORTAL_GATEWAY_CA_FILE")
CELERY_BEAT_SCHEDULE = {
    "reconcile-all": {"task": "provisioning.tasks.reconcile_all", "schedule": VCPORTAL_RECONCILE_INTERVAL},
    "gitops-reconcile": {"task": "gitops.tasks.reconcile_virtual_clusters", "schedule": VCPORTAL_GITOPS_INTERVAL,
                         "options": {"expires": VCPORTAL_GITOPS_INTERVAL}},
    "prune-gateway-tokens": {"task": "gateway.tasks.prune_access_tokens", "schedule": 3600,
                             "options": {"expires": 3600}},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
