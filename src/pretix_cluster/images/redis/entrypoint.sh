#!/bin/bash
# pretix-cluster Redis entrypoint: `redis` or `sentinel` (anything else is exec'd).
#
# The daemon's config is rendered by pretix-cluster and mounted as the Docker
# secret /run/secrets/<role>.conf. The daemon itself runs from a file in
# /dev/shm/redis that includes it: /dev/shm is the container's own tmpfs (a
# tmpfs mount from the stack file is root's 0755, the image runs as uid 998).
# Redis and Sentinel rewrite the file they run from (CONFIG REWRITE at every
# failover) with the password in it, so that file must be writable and must
# not be on the data volume. What this script
# adds is what is only known at start: for Redis its role (decided below,
# passed as `--replicaof`), for Sentinel the state it persisted on the volume
# (its id, epochs, the current master, known replicas and Sentinels), copied
# back to the volume whenever Sentinel rewrites it, secret lines never.
#
# The password is read from the redis_password secret for redis-cli only, and
# handed to it on its standard input (--askpass); it is never in an environment,
# on a command line or in a log.
#
# Environment (non-secret, set by the stack):
#   REDIS_PORT, SENTINEL_PORT     the ports (pretix_cluster.spec.PORTS)
#   REDIS_NODE_NAME               this redis node's DNS name, e.g. redis-2 (role redis)
#   REDIS_NODES                   "redis-1,redis-2,redis-3"; the first one is the
#                                 master of a set's very first bootstrap
#   REDIS_SENTINELS               "sentinel-1,sentinel-2,sentinel-3"
#   REDIS_MASTER_NAME             sentinel master group name (mymaster)
#   SENTINEL_NODE_NAME            this sentinel's DNS name (role sentinel)
#   SENTINEL_QUORUM               2 (part of the monitor line, which this script writes)
# Optional:
#   REDIS_ROLE_WAIT_S             how long redis-role keeps asking who the master is
#                                 before the task exits to be restarted (default 60)
set -euo pipefail

ROLE="${1:-redis}"
case "$ROLE" in
    redis | sentinel) ;;
    *) exec "$@" ;;
esac

DATA_DIR=/data
RUNTIME_DIR=/dev/shm/redis
SECRET_CONF="/run/secrets/$ROLE.conf"
RUNTIME_CONF="$RUNTIME_DIR/$ROLE.conf"
PASSWORD_FILE=/run/secrets/redis_password
SENTINEL_STATE="$DATA_DIR/sentinel-state.conf"
# The lines of its own file that Sentinel persists: none of them holds a password.
STATE_LINES='^sentinel (myid|current-epoch|monitor|config-epoch|leader-epoch|known-replica|known-sentinel) '
# Seconds between two looks at whether Sentinel rewrote its file.
PERSIST_INTERVAL_S=1

log() { printf '%s entrypoint[%s]: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$ROLE" "$*" >&2; }
die() {
    log "FATAL: $*"
    exit 1
}

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }
is_name() { [[ "$1" =~ ^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$ ]]; }

REDIS_PORT="${REDIS_PORT:?REDIS_PORT must be set by the stack}"
SENTINEL_PORT="${SENTINEL_PORT:?SENTINEL_PORT must be set by the stack}"
MASTER_NAME="${REDIS_MASTER_NAME:-mymaster}"
IFS=',' read -r -a NODES <<<"${REDIS_NODES:-redis-1,redis-2,redis-3}"
IFS=',' read -r -a SENTINELS <<<"${REDIS_SENTINELS:-sentinel-1,sentinel-2,sentinel-3}"
BOOTSTRAP_MASTER="${NODES[0]}"

# --- files ------------------------------------------------------------------
[[ -r "$PASSWORD_FILE" ]] ||
    die "cannot read $PASSWORD_FILE as uid $(id -u); mount the redis_password secret readable by uid 998"
[[ -r "$SECRET_CONF" ]] ||
    die "cannot read $SECRET_CONF as uid $(id -u); mount the node's rendered config as this secret"
REDIS_PASSWORD="$(tr -d '\r\n' <"$PASSWORD_FILE")"
[[ -n "$REDIS_PASSWORD" ]] || die "$PASSWORD_FILE is empty"
[[ -w "$DATA_DIR" ]] || die "$DATA_DIR is not writable by uid $(id -u) (volume ownership?)"
umask 077
mkdir -p "$RUNTIME_DIR" || die "cannot create $RUNTIME_DIR (is /dev/shm a tmpfs?)"

# Volumes from before the configs moved to the tmpfs hold the password in
# redis.conf / sentinel.conf: keep Sentinel's state from there once, then
# delete them.
forget_config_on_volume() {
    local legacy="$DATA_DIR/sentinel.conf"
    if [[ "$ROLE" == sentinel && -f "$legacy" && ! -f "$SENTINEL_STATE" ]]; then
        grep -E "$STATE_LINES" "$legacy" >"$SENTINEL_STATE" || true
        log "moved the sentinel state out of $legacy"
    fi
    rm -f "$DATA_DIR/redis.conf" "$DATA_DIR/sentinel.conf" "$DATA_DIR"/.redis.conf.* \
        "$DATA_DIR"/.sentinel.conf.*
}

# redis-cli with a hard timeout, the password on its standard input (--askpass).
rcli() { # host port args...
    local host="$1" port="$2"
    shift 2
    timeout 3 redis-cli --askpass -h "$host" -p "$port" "$@" 2>/dev/null <<<"$REDIS_PASSWORD"
}

# Ask every sentinel for the current master; print "host" per answering sentinel.
sentinel_answers() {
    local s out host port
    for s in "${SENTINELS[@]}"; do
        [[ -n "$s" ]] || continue
        out="$(rcli "$s" "$SENTINEL_PORT" SENTINEL get-master-addr-by-name "$MASTER_NAME")" || continue
        host="$(sed -n 1p <<<"$out")"
        port="$(sed -n 2p <<<"$out")"
        if is_name "$host" && is_uint "$port"; then
            echo "$host"
        fi
    done
}

# Print the first redis node that says role:master.
peer_master() {
    local n out
    for n in "${NODES[@]}"; do
        [[ -n "$n" ]] || continue
        out="$(rcli "$n" "$REDIS_PORT" INFO replication)" || continue
        if grep -q '^role:master' <<<"$out"; then
            echo "$n"
            return 0
        fi
    done
    return 1
}

# Most frequent line on stdin.
most_common() { sort | uniq -c | sort -k1,1nr -k2 | awk 'NR==1 {print $2}'; }

# --- redis ------------------------------------------------------------------
# The role is decided by redis-role (role.py): a majority of the Sentinels, or a
# confirmed master, or the very first bootstrap of an empty set. When none of
# these holds it exits non-zero after REDIS_ROLE_WAIT_S, and so does this script:
# Swarm restarts the task and it asks again.
start_redis() {
    local decision kind host port
    decision="$(redis-role)" || die "no safe role for ${REDIS_NODE_NAME:-this node} yet"
    read -r kind host port <<<"$decision"
    case "$kind" in
        master)
            echo master >"$RUNTIME_DIR/role"
            set --
            ;;
        replica)
            is_name "$host" && is_uint "$port" || die "redis-role answered '$decision'"
            echo replica >"$RUNTIME_DIR/role"
            set -- --replicaof "$host" "$port"
            ;;
        *) die "redis-role answered '$decision'" ;;
    esac
    printf 'include %s\n' "$SECRET_CONF" >"$RUNTIME_CONF"
    unset REDIS_PASSWORD
    exec redis-server "$RUNTIME_CONF" "$@"
}

# --- sentinel ---------------------------------------------------------------
# The persisted known replicas, minus the master itself and repeats. Sentinel
# refuses to start ("FATAL CONFIG FILE ERROR ... Duplicate hostname and port
# for replica") when its own rewritten file names the current master as a
# known replica too, which it did after failovers here: all three sentinels
# then crash-looped after a restart and Redis had no failover at all.
known_replicas() {
    local monitor master_host master_port
    monitor="$(grep -E "^sentinel monitor $MASTER_NAME " <<<"$1" | head -n1)"
    read -r _ _ _ master_host master_port _ <<<"$monitor" || true
    grep -E "^sentinel known-replica $MASTER_NAME " <<<"$1" \
        | grep -vxF "sentinel known-replica $MASTER_NAME $master_host $master_port" \
        | sort -u || true
}

# The state lines of the persisted state, with the monitor line and quorum of today.
sentinel_state() {
    local quorum="$1" state="" master reason answers peer
    if [[ -f "$SENTINEL_STATE" ]]; then
        state="$(grep -E "$STATE_LINES" "$SENTINEL_STATE" || true)"
    fi
    if ! grep -q "^sentinel monitor $MASTER_NAME " <<<"$state"; then
        # First boot (or state lost): learn the master from the other
        # sentinels, then from the redis nodes, else the bootstrap master.
        answers="$(sentinel_answers || true)"
        if [[ -n "$answers" ]]; then
            master="$(most_common <<<"$answers")"
            reason="other sentinels name $master"
        elif peer="$(peer_master)"; then
            master="$peer"
            reason="redis node $peer reports role:master"
        else
            master="$BOOTSTRAP_MASTER"
            reason="nobody answered: bootstrap master"
        fi
        state="$(grep -vE "^sentinel (monitor|known-replica|known-sentinel|config-epoch|leader-epoch) " <<<"$state" || true)"
        state="${state:+$state$'\n'}sentinel monitor $MASTER_NAME $master $REDIS_PORT $quorum"
        log "new sentinel state: monitoring $master ($reason)"
    else
        # quorum is part of the monitor line; keep the persisted master address
        state="$(sed -E "s/^(sentinel monitor $MASTER_NAME [^ ]+ [0-9]+) [0-9]+$/\\1 $quorum/" <<<"$state")"
        log "existing sentinel state: $(grep "^sentinel monitor $MASTER_NAME " <<<"$state")"
    fi
    grep -E '^sentinel (myid|current-epoch) ' <<<"$state" || true
    grep -E "^sentinel monitor $MASTER_NAME " <<<"$state"
    grep -E '^sentinel (config-epoch|leader-epoch|known-sentinel) ' <<<"$state" || true
    known_replicas "$state"
}

# Copy Sentinel's state lines to the volume when it rewrote its file since the
# last copy. The marker takes the file's time before the read, so a rewrite
# during the read is copied at the next look.
persist_sentinel_state() {
    local marker="$RUNTIME_DIR/.state-copied" tmp
    [[ "$RUNTIME_CONF" -nt "$marker" ]] || return 0
    touch -r "$RUNTIME_CONF" "$marker"
    tmp="$(mktemp "$DATA_DIR/.sentinel-state.XXXXXX")"
    grep -E "$STATE_LINES" "$RUNTIME_CONF" >"$tmp" || true
    mv -f "$tmp" "$SENTINEL_STATE"
}

start_sentinel() {
    NODE_NAME="${SENTINEL_NODE_NAME:?SENTINEL_NODE_NAME must be set (the DNS name of this sentinel)}"
    is_name "$NODE_NAME" || die "bad SENTINEL_NODE_NAME"
    is_name "$MASTER_NAME" || die "bad REDIS_MASTER_NAME"
    local quorum="${SENTINEL_QUORUM:-2}" state
    is_uint "$quorum" || die "bad SENTINEL_QUORUM: $quorum"

    state="$(sentinel_state "$quorum")"
    printf 'include %s\n%s\n' "$SECRET_CONF" "$state" >"$RUNTIME_CONF"
    echo sentinel >"$RUNTIME_DIR/role"
    unset REDIS_PASSWORD

    # Not exec'd: this shell stays to copy the state back. It forwards the stop
    # signal, and exits with Sentinel's status.
    redis-sentinel "$RUNTIME_CONF" &
    local child=$!
    trap 'kill -TERM "$child" 2>/dev/null || true' TERM INT
    while kill -0 "$child" 2>/dev/null; do
        persist_sentinel_state
        sleep "$PERSIST_INTERVAL_S"
    done
    persist_sentinel_state
    wait "$child"
}

forget_config_on_volume
case "$ROLE" in
    redis) start_redis ;;
    sentinel) start_sentinel ;;
esac
