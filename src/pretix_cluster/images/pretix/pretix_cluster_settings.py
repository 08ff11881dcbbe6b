"""Django settings for pretix in a pretix-cluster container.

Installed into the image's venv as the top-level module ``pretix_cluster_settings``
and selected with ``DJANGO_SETTINGS_MODULE=pretix_cluster_settings`` (image ENV).
It loads pretix's own settings unchanged and adjusts only what that
pretix.cfg cannot express:

* ``[mail] backend``: pretix hard-codes Django's SMTP backend.  Accepted values:
  ``smtp`` (pretix default), ``dummy`` (mails are dropped and recorded as sent),
  ``console`` (mails are written to stdout), or a dotted Django backend path.
  Without an SMTP server, ``dummy`` keeps the mail queue from retrying every
  order-confirmation mail six times.
* Persistent database connections are checked before each request
  (``CONN_HEALTH_CHECKS``): after a PostgreSQL failover HAProxy cuts every
  connection to the old primary, and without the check each web process
  answers its next request with a 500 on the dead connection.
* Bounded waits on every data-tier connection (``DATA_TIER_TIMEOUTS``): a
  connection to a dead or frozen machine costs seconds, not gunicorn's 60 s
  worker timeout. Without them a paused PostgreSQL primary held every sync
  gunicorn worker, the liveness check queued behind them, and Swarm restarted
  healthy web replicas during a data-tier outage.
* New database connections wait through a failover (``pretix_cluster_db``, up to
  ``[pretix_cluster] db_connect_wait`` seconds, the spec's ``[postgres]
  connect_wait``): while HAProxy has no primary it closes every new connection,
  and each request that needed one answered 500. The engine keeps
  ``.postgresql`` in its dotted path, which pretix tests for.
* Logging goes to the console only (container logs); pretix's file handlers
  (``<datadir>/logs/pretix.log``, ``csp.log``) would grow without bound in the
  container's writable layer.  Set ``[pretix_cluster] file_logs = on`` to keep them.
* Media on S3-compatible storage: a ``[pretix_cluster_s3]`` section (endpoint,
  bucket, region, access_key, secret_key) makes django-storages' S3 backend
  Django's default storage, so every web and worker replica on every machine
  reads and writes the same media. pretix.cfg cannot say this (pretix's docs:
  S3 only through a custom settings module). Files are private; pretix's
  links to them are signed (query-string auth).
"""

from django.conf import global_settings
from pretix import settings as pretix_settings
from pretix.settings import *  # noqa: F403
from pretix.settings import CACHES, DATABASES, EMAIL_BACKEND, LOGGING, config

_MAIL_BACKENDS = {
    "smtp": "django.core.mail.backends.smtp.EmailBackend",
    "dummy": "django.core.mail.backends.dummy.EmailBackend",
    "console": "django.core.mail.backends.console.EmailBackend",
}

DATA_TIER_TIMEOUTS = {
    # libpq: give up connecting after 5 s; notice a silent peer through TCP
    # keepalives, and drop a connection whose sent data stays unacknowledged
    # for 10 s (a frozen primary) instead of waiting for the kernel's ~15 min.
    "postgresql": {
        "connect_timeout": 5,
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 3,
        "tcp_user_timeout": 10000,
    },
    # A new connection retried for up to [postgres] connect_wait of the spec (a
    # failover: Patroni's ttl is 20 s); after a wait that ran out, none for 30 s
    # (an outage: keep the workers free). pretix-cluster always writes the key; without
    # it (the image's build-time config) nothing waits.
    "postgresql_connect_wait_s": config.getint("pretix_cluster", "db_connect_wait", fallback=0),
    "postgresql_connect_pause_s": 30,
    "redis_connect_s": 5,
    "redis_socket_s": 10,
}

for _database in DATABASES.values():
    if _database["ENGINE"] == "django.db.backends.postgresql":
        _database["ENGINE"] = "pretix_cluster_db.postgresql"
    _database["CONN_HEALTH_CHECKS"] = True
    # pretix shares one OPTIONS dict between its databases: give each its own copy.
    _database["OPTIONS"] = {**_database.get("OPTIONS", {}), **DATA_TIER_TIMEOUTS["postgresql"]}

for _cache in CACHES.values():
    if _cache["BACKEND"] == "django_redis.cache.RedisCache":
        _cache["OPTIONS"] = {
            **_cache.get("OPTIONS", {}),
            "SOCKET_CONNECT_TIMEOUT": DATA_TIER_TIMEOUTS["redis_connect_s"],
            "SOCKET_TIMEOUT": DATA_TIER_TIMEOUTS["redis_socket_s"],
        }

# Only when pretix.cfg names a broker (the image's build-time config has none).
if hasattr(pretix_settings, "CELERY_BROKER_TRANSPORT_OPTIONS"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        **pretix_settings.CELERY_BROKER_TRANSPORT_OPTIONS,
        "socket_connect_timeout": DATA_TIER_TIMEOUTS["redis_connect_s"],
        "socket_timeout": DATA_TIER_TIMEOUTS["redis_socket_s"],
    }
    CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = DATA_TIER_TIMEOUTS["redis_connect_s"]
    CELERY_REDIS_SOCKET_TIMEOUT = DATA_TIER_TIMEOUTS["redis_socket_s"]

_backend = config.get("mail", "backend", fallback="smtp").strip()
EMAIL_BACKEND = _MAIL_BACKENDS.get(_backend.lower(), _backend) or EMAIL_BACKEND

if not config.getboolean("pretix_cluster", "file_logs", fallback=False):
    for _name in ("file", "csp_file"):
        LOGGING["handlers"][_name] = {"class": "logging.NullHandler"}

S3_SECTION = "pretix_cluster_s3"
if config.has_section(S3_SECTION):
    _s3 = dict(config.items(S3_SECTION))
    STORAGES = {
        **global_settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "endpoint_url": _s3["endpoint"],
                "bucket_name": _s3["bucket"],
                "region_name": _s3.get("region") or None,
                "access_key": _s3["access_key"],
                "secret_key": _s3["secret_key"],
                "default_acl": "private",
                "querystring_auth": True,
                # Two uploads of the same name must never replace each other's file.
                "file_overwrite": False,
            },
        },
    }
