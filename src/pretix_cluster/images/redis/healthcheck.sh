#!/bin/bash
# Docker HEALTHCHECK for both roles of the pretix-cluster Redis image.
#   redis    -> PING answers PONG (authenticated) on $REDIS_PORT
#   sentinel -> PING answers PONG on $SENTINEL_PORT and the sentinel knows a master
# The role is the one the entrypoint recorded in /dev/shm/redis/role (or $1); the
# ports come from the stack's environment (pretix_cluster.spec.PORTS).
# The password is read from the secret file here and handed to redis-cli via
# REDISCLI_AUTH (environment of that child only), never on a command line.
set -euo pipefail

role="${1:-$(cat /dev/shm/redis/role 2>/dev/null || echo redis)}"
export REDISCLI_AUTH
REDISCLI_AUTH="$(tr -d '\r\n' </run/secrets/redis_password)"

case "$role" in
    sentinel)
        [[ "$(timeout 4 redis-cli -p "$SENTINEL_PORT" ping)" == "PONG" ]] || exit 1
        master="$(timeout 4 redis-cli -p "$SENTINEL_PORT" SENTINEL get-master-addr-by-name \
            "${REDIS_MASTER_NAME:-mymaster}" | head -n1)"
        [[ -n "$master" ]] || exit 1
        ;;
    *)
        [[ "$(timeout 4 redis-cli -p "$REDIS_PORT" ping)" == "PONG" ]] || exit 1
        ;;
esac
