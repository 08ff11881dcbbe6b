#!/bin/bash
# Plain PostgreSQL 15 without Patroni, etcd or replication: the single-node
# baseline of `pretix-cluster bench` (what pretix's own small-scale install runs).
# Installed as /usr/local/bin/pg-standalone; the image's entrypoint execs it
# when it is the command (`command: [pg-standalone, -c, name=value, ...]`).
#
# Runs as postgres (uid 999), never as root (PostgreSQL refuses that anyway).
# First start: initdb (same options as the cluster's Patroni bootstrap), then
# the role and database pretix through the same post_bootstrap.sh, with the
# password from the Docker secret /run/secrets/pg_pretix_password, on a
# socket-only temporary server. Every start: exec postgres with the arguments
# (the spec's PostgreSQL parameters, as `-c name=value`).
# Stop with SIGINT (fast shutdown): SIGTERM would wait for pretix's persistent
# connections to close (smart shutdown).
set -euo pipefail

DATA_ROOT=/var/lib/postgresql/data
PGDATA="$DATA_ROOT/pg"
SOCKETS=/var/run/postgresql

die() { echo "pg-standalone: ERROR: $*" >&2; exit 1; }

[ "$(id -u)" != 0 ] || die "must not run as root (run the image as its user postgres)"
[ -w "$DATA_ROOT" ] || die "$DATA_ROOT is not writable by uid $(id -u); chown -R 999:999 the volume"
umask 0077

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    echo "pg-standalone: initialising $PGDATA" >&2
    rm -rf "$PGDATA"
    initdb --pgdata="$PGDATA" --username=postgres --encoding=UTF8 --locale=C.UTF-8 \
        --data-checksums --auth-local=peer --auth-host=scram-sha-256 >&2
    # Local socket: OS user postgres only (peer); over TCP a SCRAM password
    # (the superuser has none, so only pretix can log in from the network).
    cat > "$PGDATA/pg_hba.conf" <<'HBA'
local   all   postgres                 peer
local   all   all                      scram-sha-256
host    all   all        0.0.0.0/0     scram-sha-256
HBA
    pg_ctl --pgdata="$PGDATA" --wait --silent \
        -o "-c listen_addresses='' -c unix_socket_directories=$SOCKETS" start
    /usr/local/bin/post_bootstrap.sh "host=$SOCKETS dbname=postgres user=postgres"
    pg_ctl --pgdata="$PGDATA" --wait --silent --mode=fast stop
fi
chmod 0700 "$PGDATA"

echo "pg-standalone: starting PostgreSQL $(cat "$PGDATA/PG_VERSION") $*" >&2
exec postgres -D "$PGDATA" -c listen_addresses='*' -c "unix_socket_directories=$SOCKETS" \
    -c password_encryption=scram-sha-256 "$@"
