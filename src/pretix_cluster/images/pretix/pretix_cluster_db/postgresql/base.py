"""Django's PostgreSQL backend, with new connections waiting through a failover.

See :mod:`pretix_cluster_db.connect_wait`. The engine's dotted path contains
``.postgresql``: pretix tests for that substring to use PostgreSQL's locks.
"""

from __future__ import annotations

from django.conf import settings
from django.db.backends.postgresql import base

from pretix_cluster_db.connect_wait import ConnectWait

_wait = ConnectWait(
    settings.DATA_TIER_TIMEOUTS["postgresql_connect_wait_s"],
    settings.DATA_TIER_TIMEOUTS["postgresql_connect_pause_s"],
)


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        parent = super().get_new_connection
        return _wait.connect(lambda: parent(conn_params), base.Database.OperationalError)
