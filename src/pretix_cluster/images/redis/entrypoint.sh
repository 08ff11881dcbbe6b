#!/bin/bash
# pretix-cluster Redis entrypoint: `redis` or `sentinel` (anything else is exec'd).
#
# Writes the real config (mode 0600) into the /data volume at every start, with
# the password read from the Docker secret file. The password is never put in
# the environment of the server process, on a command line or in a log line;
# redis-cli gets it through REDISCLI_AUTH set for that one child process only.
#
# Environment (non-secret, set by the stack):
#   REDIS_NODE_NAME               this redis node's DNS name, e.g. redis-2 (role redis)
#   REDIS_NODES                   "redis-1,redis-2,redis-3"; the first one is the
#                                 bootstrap master when nobody knows better
#   REDIS_SENTINELS               "sentinel-1,sentinel-2,sentinel-3"
#   REDIS_MASTER_NAME             sentinel master group name (mymaster)
#   SENTINEL_NODE_NAME            this sentinel's DNS name (role sentinel)
#   SENTINEL_QUORUM               2
#   SENTINEL_DOWN_AFTER_MS        e.g. 5000 (Redis default 30000)
#   SENTINEL_FAILOVER_TIMEOUT_MS  e.g. 60000 (Redis default 180000)
# Optional:
#   REDIS_PASSWORD_FILE           default /run/secrets/redis_password
#   REDIS_MIN_REPLICAS_TO_WRITE   default 1 (see below)
#   REDIS_MIN_REPLICAS_MAX_LAG    default 10 (seconds)
#   REDIS_MAXMEMORY               e.g. 1gb (default: unset = no limit); policy noeviction
#   REDIS_ROLE_WAIT_S             how long a node with data waits for a sentinel or
#                                 peer to tell it who the master is (default 15)
#   SENTINEL_PARALLEL_SYNCS       default 1
set -euo pipefail

ROLE="${1:-redis}"
case "$ROLE" in
    redis | sentinel) ;;
    *) exec "$@" ;;
esac

DATA_DIR=/data
STATE_DIR=/run/redis
REDIS_PORT=6379
SENTINEL_PORT=26379
PASSWORD_FILE="${REDIS_PASSWORD_FILE:-/run/secrets/redis_password}"
MASTER_NAME="${REDIS_MASTER_NAME:-mymaster}"
IFS=',' read -r -a NODES <<<"${REDIS_NODES:-redis-1,redis-2,redis-3}"
IFS=',' read -r -a SENTINELS <<<"${REDIS_SENTINELS:-sentinel-1,sentinel-2,sentinel-3}"
BOOTSTRAP_MASTER="${NODES[0]}"

log() { printf '%s entrypoint[%s]: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$ROLE" "$*" >&2; }
die() {
    log "FATAL: $*"
    exit 1
}

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }
is_name() { [[ "$1" =~ ^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$ ]]; }

# --- password ---------------------------------------------------------------
[[ -r "$PASSWORD_FILE" ]] ||
    die "cannot read $PASSWORD_FILE as uid $(id -u); mount the redis_password secret readable by uid 998"
REDIS_PASSWORD="$(tr -d '\r\n' <"$PASSWORD_FILE")"
# urlsafe base64 only: nothing that could break out of a config line.
[[ "$REDIS_PASSWORD" =~ ^[A-Za-z0-9_=-]{16,}$ ]] ||
    die "password in $PASSWORD_FILE must be >= 16 urlsafe-base64 characters"

[[ -w "$DATA_DIR" ]] || die "$DATA_DIR is not writable by uid $(id -u) (volume ownership?)"
umask 077

# redis-cli with the password in its own environment only, and a hard timeout.
rcli() { # host port args...
    local host="$1" port="$2"
    shift 2
    REDISCLI_AUTH="$REDIS_PASSWORD" timeout 3 redis-cli --no-auth-warning \
        -h "$host" -p "$port" "$@" 2>/dev/null
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

# Print the first peer (not $1) that says role:master.
peer_master() {
    local me="$1" n out
    for n in "${NODES[@]}"; do
        [[ -n "$n" && "$n" != "$me" ]] || continue
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

# Is this address (name or IP) this container?
is_me() {
    local addr="$1" ip
    [[ "$addr" == "$NODE_NAME" ]] && return 0
    for ip in $(hostname -I 2>/dev/null || true); do
        [[ "$addr" == "$ip" ]] && return 0
    done
    return 1
}

# --- redis ------------------------------------------------------------------
start_redis() {
    NODE_NAME="${REDIS_NODE_NAME:?REDIS_NODE_NAME must be set (the DNS name of this node)}"
    is_name "$NODE_NAME" || die "bad REDIS_NODE_NAME"
    [[ ",${REDIS_NODES:-redis-1,redis-2,redis-3}," == *",$NODE_NAME,"* ]] ||
        die "REDIS_NODE_NAME $NODE_NAME is not in REDIS_NODES"
    local min_replicas="${REDIS_MIN_REPLICAS_TO_WRITE:-1}"
    local max_lag="${REDIS_MIN_REPLICAS_MAX_LAG:-10}"
    local wait_s="${REDIS_ROLE_WAIT_S:-15}"
    for v in "$min_replicas" "$max_lag" "$wait_s"; do
        is_uint "$v" || die "bad numeric redis setting: $v"
    done

    # Role decision. Sentinels are the authority; a node coming back after a
    # failover must never start as a second master.
    local has_data=no
    if [[ -d "$DATA_DIR/appendonlydir" || -f "$DATA_DIR/dump.rdb" ]]; then has_data=yes; fi
    # A node with data may be part of a cold restart of the whole cluster:
    # give the sentinels time to come up before falling back to the bootstrap
    # rule. A node without data (first boot) decides at once.
    local deadline=$SECONDS
    if [[ "$has_data" == yes ]]; then deadline=$((SECONDS + wait_s)); fi
    local master="" reason="" answers others peer
    while :; do
        answers="$(sentinel_answers)"
        if [[ -n "$answers" ]]; then
            others="$(while read -r a; do is_me "$a" || echo "$a"; done <<<"$answers")"
            if [[ -n "$others" ]]; then
                master="$(most_common <<<"$others")"
                reason="sentinels name $master as master ($(tr '\n' ' ' <<<"$answers"))"
            else
                master="$NODE_NAME"
                reason="sentinels name me as master"
            fi
            break
        fi
        if peer="$(peer_master "$NODE_NAME")"; then
            master="$peer"
            reason="no sentinel answered; peer $peer reports role:master"
            break
        fi
        ((SECONDS >= deadline)) && break
        log "no sentinel or peer knows the master yet (data=$has_data); retrying"
        sleep 2
    done
    if [[ -z "$master" ]]; then
        master="$BOOTSTRAP_MASTER"
        reason="nobody answered: bootstrap rule, $BOOTSTRAP_MASTER is master"
    fi

    local conf="$DATA_DIR/redis.conf" tmp
    tmp="$(mktemp "$DATA_DIR/.redis.conf.XXXXXX")"
    {
        echo "# generated by redis-entrypoint at $(date -u +%Y-%m-%dT%H:%M:%SZ); rewritten at every start"
        echo "bind 0.0.0.0"
        echo "port $REDIS_PORT"
        echo "protected-mode no"
        echo "daemonize no"
        echo "dir $DATA_DIR"
        echo 'logfile ""'
        echo "loglevel notice"
        echo "tcp-keepalive 60"
        echo "timeout 0"
        echo "requirepass $REDIS_PASSWORD"
        echo "masterauth $REDIS_PASSWORD"
        # persistence: AOF (everysec) with RDB preamble; RDB snapshots as default
        echo "appendonly yes"
        echo "appendfsync everysec"
        echo "aof-use-rdb-preamble yes"
        # replication
        echo "replica-announce-ip $NODE_NAME"
        echo "replica-announce-port $REDIS_PORT"
        echo "replica-read-only yes"
        echo "replica-serve-stale-data yes"
        echo "repl-diskless-sync yes"
        echo "replica-priority 100"
        # A master accepts writes only while >= min_replicas replicas acked within
        # max_lag seconds: an isolated/stale master stops taking writes that a
        # failover would throw away. 1 (not 2) so that with one of three nodes
        # down (one master + one replica left) writes still succeed.
        echo "min-replicas-to-write $min_replicas"
        echo "min-replicas-max-lag $max_lag"
        # a master shutting down (SIGTERM) waits for its replicas to catch up
        echo "shutdown-timeout 10"
        if [[ -n "${REDIS_MAXMEMORY:-}" ]]; then
            [[ "$REDIS_MAXMEMORY" =~ ^[0-9]+[kmgKMG]?[bB]?$ ]] || die "bad REDIS_MAXMEMORY"
            echo "maxmemory $REDIS_MAXMEMORY"
            # never evict: the celery queue and sessions live here
            echo "maxmemory-policy noeviction"
        fi
        if [[ "$master" != "$NODE_NAME" ]]; then
            echo "replicaof $master $REDIS_PORT"
        fi
    } >"$tmp"
    chmod 0600 "$tmp"
    mv -f "$tmp" "$conf"

    if [[ "$master" == "$NODE_NAME" ]]; then
        log "starting $NODE_NAME as MASTER: $reason"
        echo master >"$STATE_DIR/role" 2>/dev/null || true
    else
        log "starting $NODE_NAME as REPLICA of $master: $reason"
        echo replica >"$STATE_DIR/role" 2>/dev/null || true
    fi
    unset REDIS_PASSWORD
    exec redis-server "$conf"
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

start_sentinel() {
    NODE_NAME="${SENTINEL_NODE_NAME:?SENTINEL_NODE_NAME must be set (the DNS name of this sentinel)}"
    is_name "$NODE_NAME" || die "bad SENTINEL_NODE_NAME"
    is_name "$MASTER_NAME" || die "bad REDIS_MASTER_NAME"
    local quorum="${SENTINEL_QUORUM:-2}"
    local down_after="${SENTINEL_DOWN_AFTER_MS:-30000}"
    local failover_timeout="${SENTINEL_FAILOVER_TIMEOUT_MS:-180000}"
    local parallel_syncs="${SENTINEL_PARALLEL_SYNCS:-1}"
    for v in "$quorum" "$down_after" "$failover_timeout" "$parallel_syncs"; do
        is_uint "$v" || die "bad numeric sentinel setting: $v"
    done

    local conf="$DATA_DIR/sentinel.conf" state="" tmp master="" reason=""
    if [[ -f "$conf" ]]; then
        # Keep the state sentinel persisted (myid, epochs, current master,
        # known replicas/sentinels); everything else is refreshed from env and
        # secret, so changed timeouts or a rotated password take effect.
        state="$(grep -E '^sentinel (myid|monitor|config-epoch|leader-epoch|current-epoch|known-replica|known-sentinel) ' "$conf" || true)"
    fi
    if ! grep -q "^sentinel monitor $MASTER_NAME " <<<"$state"; then
        # First boot (or config lost): learn the master from the other
        # sentinels, then from the redis nodes, else the bootstrap master.
        local answers peer
        answers="$(sentinel_answers || true)"
        if [[ -n "$answers" ]]; then
            master="$(most_common <<<"$answers")"
            reason="other sentinels name $master"
        elif peer="$(peer_master "")"; then
            master="$peer"
            reason="redis node $peer reports role:master"
        else
            master="$BOOTSTRAP_MASTER"
            reason="nobody answered: bootstrap master"
        fi
        state="$(grep -vE "^sentinel (monitor|known-replica|known-sentinel|config-epoch|leader-epoch) " <<<"$state" || true)"
        state="${state:+$state$'\n'}sentinel monitor $MASTER_NAME $master $REDIS_PORT $quorum"
        log "new sentinel config: monitoring $master ($reason)"
    else
        # quorum is part of the monitor line; keep the persisted master address
        state="$(sed -E "s/^(sentinel monitor $MASTER_NAME [^ ]+ [0-9]+) [0-9]+$/\\1 $quorum/" <<<"$state")"
        log "existing sentinel config: $(grep "^sentinel monitor $MASTER_NAME " <<<"$state")"
    fi

    tmp="$(mktemp "$DATA_DIR/.sentinel.conf.XXXXXX")"
    {
        echo "# managed by redis-entrypoint; sentinel rewrites this file at runtime"
        echo "port $SENTINEL_PORT"
        echo "bind 0.0.0.0"
        echo "protected-mode no"
        echo "daemonize no"
        echo "dir $DATA_DIR"
        echo 'logfile ""'
        echo "loglevel notice"
        # must precede the monitor line: names, not IPs, survive container restarts
        echo "sentinel resolve-hostnames yes"
        echo "sentinel announce-hostnames yes"
        echo "sentinel announce-ip $NODE_NAME"
        echo "sentinel announce-port $SENTINEL_PORT"
        echo "sentinel deny-scripts-reconfig yes"
        # sentinels themselves require the password; they use it with each other
        echo "requirepass $REDIS_PASSWORD"
        echo "sentinel sentinel-pass $REDIS_PASSWORD"
        grep -E '^sentinel (myid|current-epoch) ' <<<"$state" || true
        grep -E "^sentinel monitor $MASTER_NAME " <<<"$state"
        echo "sentinel auth-pass $MASTER_NAME $REDIS_PASSWORD"
        echo "sentinel down-after-milliseconds $MASTER_NAME $down_after"
        echo "sentinel failover-timeout $MASTER_NAME $failover_timeout"
        echo "sentinel parallel-syncs $MASTER_NAME $parallel_syncs"
        grep -E '^sentinel (config-epoch|leader-epoch|known-sentinel) ' <<<"$state" || true
        known_replicas "$state"
    } >"$tmp"
    chmod 0600 "$tmp"
    mv -f "$tmp" "$conf"
    echo sentinel >"$STATE_DIR/role" 2>/dev/null || true
    unset REDIS_PASSWORD
    exec redis-sentinel "$conf"
}

case "$ROLE" in
    redis) start_redis ;;
    sentinel) start_sentinel ;;
esac
