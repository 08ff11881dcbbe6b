#!/bin/bash
# pretix-cluster PostgreSQL node entrypoint: sanity checks, then exec Patroni.
#
# Runs as postgres (uid 999). Patroni is PID 1 after the exec: it detects that,
# forks the real daemon and reaps zombies itself, so no extra init is needed.
#
# Arguments: none / a config path / options starting with "-"  -> run Patroni
#            anything else (e.g. "bash")                        -> exec it as is
# Environment (no secrets here, ever):
#   PATRONI_NAME                        required; the node's name == its DNS name (pg-1)
#   PATRONI_RESTAPI_CONNECT_ADDRESS     default "$PATRONI_NAME:8008"
#   PATRONI_POSTGRESQL_CONNECT_ADDRESS  default "$PATRONI_NAME:5432"
# Any other PATRONI_* variable overrides the config file as documented by Patroni.
set -euo pipefail

DATA_ROOT=/var/lib/postgresql/data
DEFAULT_CONFIG=/run/secrets/patroni.yml

die() { echo "entrypoint: ERROR: $*" >&2; exit 1; }

if [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ] && [ ! -f "$1" ] && [ "${1%.yml}" = "$1" ] && [ "${1%.yaml}" = "$1" ]; then
    exec "$@"
fi

config="$DEFAULT_CONFIG"
if [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ]; then
    config="$1"; shift
fi

[ -n "${PATRONI_NAME:-}" ] || die "PATRONI_NAME is not set (use the service name, e.g. pg-1)"
case "$PATRONI_NAME" in
    *[!A-Za-z0-9._-]*) die "PATRONI_NAME '$PATRONI_NAME' must be a DNS name" ;;
esac
export PATRONI_RESTAPI_CONNECT_ADDRESS="${PATRONI_RESTAPI_CONNECT_ADDRESS:-$PATRONI_NAME:8008}"
export PATRONI_POSTGRESQL_CONNECT_ADDRESS="${PATRONI_POSTGRESQL_CONNECT_ADDRESS:-$PATRONI_NAME:5432}"

for var in $(compgen -e); do
    case "$var" in
        PATRONI_*PASSWORD*|PGPASSWORD) die "$var is set: passwords belong in $DEFAULT_CONFIG (a Docker secret), not in the environment" ;;
    esac
done

[ -r "$config" ] || die "cannot read $config as uid $(id -u): mount the Docker secret with uid: \"999\", gid: \"999\", mode: 0400"
if [ -e /run/secrets/pg_pretix_password ] && [ ! -r /run/secrets/pg_pretix_password ]; then
    die "cannot read /run/secrets/pg_pretix_password as uid $(id -u): mount the secret with uid: \"999\", mode: 0400"
fi

# A fresh named volume inherits the image's ownership (postgres, 0700). A bind
# mount or a pre-existing volume may be owned by root: we cannot fix that as
# postgres, so say what to do instead of letting initdb fail obscurely.
[ -d "$DATA_ROOT" ] || die "$DATA_ROOT does not exist"
[ -w "$DATA_ROOT" ] && [ -x "$DATA_ROOT" ] || \
    die "$DATA_ROOT is not writable by uid $(id -u) (owner: $(stat -c %u:%g "$DATA_ROOT")); chown -R 999:999 the volume"
if [ -d "$DATA_ROOT/pg" ]; then
    # PostgreSQL refuses a data directory with group/other write access.
    chmod 0700 "$DATA_ROOT/pg" 2>/dev/null || true
fi

umask 0077
echo "entrypoint: starting Patroni as $(id -un) for node $PATRONI_NAME (api $PATRONI_RESTAPI_CONNECT_ADDRESS, pg $PATRONI_POSTGRESQL_CONNECT_ADDRESS)" >&2
exec /opt/patroni/bin/patroni "$config" "$@"
