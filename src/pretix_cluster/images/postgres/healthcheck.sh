#!/bin/sh
# Container healthcheck: Patroni REST API GET /liveness on this node.
#
# 200 while Patroni's HA loop runs (it must have run within ttl on a primary,
# 2*ttl on a replica). Deliberately NOT /health (503 whenever PostgreSQL is not
# up, e.g. during pg_basebackup / pg_rewind / WAL catch-up of a replica): Swarm
# restarts an unhealthy task, which would kill a replica that is rejoining.
# Role/lag-based routing is HAProxy's job (/primary, /replica?lag=...).
# The port is the one the stack gives Patroni (pg-N:<port>, from spec.PORTS); not
# an env var of its own: Patroni takes every PATRONI_*_PORT as a setting.
exec curl --fail --silent --show-error --output /dev/null --max-time 4 \
    "http://127.0.0.1:${PATRONI_RESTAPI_CONNECT_ADDRESS##*:}/liveness"
