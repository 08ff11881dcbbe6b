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
* Logging goes to the console only (container logs); pretix's file handlers
  (``<datadir>/logs/pretix.log``, ``csp.log``) would grow without bound in the
  container's writable layer.  Set ``[pretix_cluster] file_logs = on`` to keep them.
"""

from pretix.settings import *  # noqa: F403
from pretix.settings import DATABASES, EMAIL_BACKEND, LOGGING, config

_MAIL_BACKENDS = {
    "smtp": "django.core.mail.backends.smtp.EmailBackend",
    "dummy": "django.core.mail.backends.dummy.EmailBackend",
    "console": "django.core.mail.backends.console.EmailBackend",
}

for _database in DATABASES.values():
    _database["CONN_HEALTH_CHECKS"] = True

_backend = config.get("mail", "backend", fallback="smtp").strip()
EMAIL_BACKEND = _MAIL_BACKENDS.get(_backend.lower(), _backend) or EMAIL_BACKEND

if not config.getboolean("pretix_cluster", "file_logs", fallback=False):
    for _name in ("file", "csp_file"):
        LOGGING["handlers"][_name] = {"class": "logging.NullHandler"}
