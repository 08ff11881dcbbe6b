#!/bin/bash
# Docker HEALTHCHECK for both roles of the pretix-cluster Redis image.
#   redis    -> PING answers PONG (authenticated) on $REDIS_PORT
#   sentinel -> PING answers PONG on $SENTINEL_PORT and the sentinel knows a master
# The role is the one the entrypoint recorded in /dev/shm/redis/role (or $1); the
# ports come from the stack's environment (pretix_cluster.spec.PORTS).
# redis-cli reads the password from the secret file on its standard input
# (--askpass): never in an environment or on a command line.
set -euo pipefail

role="${1:-$(cat /dev/shm/redis/role 2>/dev/null || echo redis)}"
cli() { timeout 4 redis-cli --askpass "$@" </run/secrets/redis_password; }

case "$role" in
    sentinel)
        [[ "$(cli -p "$SENTINEL_PORT" ping)" == "PONG" ]] || exit 1
        master="$(cli -p "$SENTINEL_PORT" SENTINEL get-master-addr-by-name \
            "${REDIS_MASTER_NAME:-mymaster}" | head -n1)"
        [[ -n "$master" ]] || exit 1
        ;;
    *)
        [[ "$(cli -p "$REDIS_PORT" ping)" == "PONG" ]] || exit 1
        ;;
esac
