#!/bin/bash
# pretix-cluster entrypoint (image hp/pretix, user pretix 15371:15371).  Usage: entrypoint.sh <role> [args]
#
#   web               gunicorn pretix_cluster_wsgi (pretix.wsgi + the liveness path) on 0.0.0.0:${PRETIX_WEB_PORT:-8000}
#   worker            celery worker (node name celery@$HOSTNAME) for all pretix queues
#   standalone        gunicorn (as `web`) and a celery worker (as `worker`) in one container, the
#                     way pretix's own small-scale image runs both under supervisord; the first
#                     of the two to exit stops the other and ends the container (Swarm restarts
#                     it). Used by `pretix-cluster bench` for its single-node baseline.
#   cron              loop: python -m pretix runperiodic every PRETIX_CRON_INTERVAL s, never dies
#                     on a failed run, touches /tmp/cron-heartbeat after each run
#   migrate           wait for the DB, python -m pretix migrate --noinput, switch pretix's
#                     update check off (no calls to pretix.eu), exit 0 on success
#   healthcheck [r]   health of role r (default: the role this container runs, /tmp/pretix-role)
#                     (also on PATH as `pretix-entrypoint healthcheck <role>`)
#   manage <args>     python -m pretix <args>
#   <anything else>   exec'd as a command
#
# Environment (all optional):
#   PRETIX_CONFIG_FILE                 /run/secrets/pretix.cfg (image ENV; a Docker secret)
#   web:     PRETIX_WEB_PORT (8000), PRETIX_GUNICORN_WORKERS (2 x nproc), PRETIX_GUNICORN_THREADS (1),
#            PRETIX_GUNICORN_TIMEOUT (60), PRETIX_GUNICORN_GRACEFUL_TIMEOUT (30),
#            PRETIX_GUNICORN_KEEPALIVE (5), PRETIX_GUNICORN_MAX_REQUESTS (1200),
#            PRETIX_GUNICORN_MAX_REQUESTS_JITTER (50), PRETIX_GUNICORN_LOGLEVEL (info),
#            PRETIX_GUNICORN_ACCESS_LOG (0), PRETIX_GUNICORN_EXTRA_ARGS
#   worker:  PRETIX_CELERY_CONCURRENCY (celery's default: nproc), PRETIX_CELERY_QUEUES
#            (default,checkout,mail,background,notifications), PRETIX_CELERY_LOGLEVEL (INFO),
#            PRETIX_CELERY_EXTRA_ARGS
#   cron:    PRETIX_CRON_INTERVAL (300), PRETIX_CRON_TIMEOUT (2 x interval),
#            PRETIX_CRON_HEARTBEAT (/tmp/cron-heartbeat)
#   migrate: PRETIX_MIGRATE_TIMEOUT (300), PRETIX_MIGRATE_ATTEMPTS (3), PRETIX_UPDATE_CHECK (off)
#   health:  PRETIX_HEALTHCHECK_TIMEOUT (5), PRETIX_LIVE_PATH (/_cluster/live)
#   PRETIX_ROLE_FILE                   where the running role is recorded (/tmp/pretix-role)
set -euo pipefail

export PATH="/opt/pretix/venv/bin:${PATH}"
ROLE_FILE="${PRETIX_ROLE_FILE:-/tmp/pretix-role}"
HEARTBEAT="${PRETIX_CRON_HEARTBEAT:-/tmp/cron-heartbeat}"

log() { echo "[pretix-entrypoint $(date -u +%Y-%m-%dT%H:%M:%SZ)] $*" >&2; }

require_config() {
    if [ ! -r "${PRETIX_CONFIG_FILE:-}" ]; then
        log "ERROR: config file '${PRETIX_CONFIG_FILE:-}' is missing or not readable by uid $(id -u)" \
            "(mount the secret with uid=15371 or mode 0444)"
        exit 78
    fi
}

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }

role="${1:-web}"
[ "$#" -gt 0 ] && shift

case "$role" in
web)
    require_config
    echo web > "$ROLE_FILE"
    workers="${PRETIX_GUNICORN_WORKERS:-$(( $(nproc) * 2 ))}"
    threads="${PRETIX_GUNICORN_THREADS:-1}"
    args=(
        pretix_cluster_wsgi:application
        --name pretix-web
        --bind "0.0.0.0:${PRETIX_WEB_PORT:-8000}"
        --workers "$workers"
        --threads "$threads"
        --timeout "${PRETIX_GUNICORN_TIMEOUT:-60}"
        --graceful-timeout "${PRETIX_GUNICORN_GRACEFUL_TIMEOUT:-30}"
        --keep-alive "${PRETIX_GUNICORN_KEEPALIVE:-5}"
        --max-requests "${PRETIX_GUNICORN_MAX_REQUESTS:-1200}"
        --max-requests-jitter "${PRETIX_GUNICORN_MAX_REQUESTS_JITTER:-50}"
        --forwarded-allow-ips '*'
        --worker-tmp-dir /dev/shm
        --log-level "${PRETIX_GUNICORN_LOGLEVEL:-info}"
        --error-logfile -
    )
    case "${PRETIX_GUNICORN_ACCESS_LOG:-0}" in
        1|true|yes|on) args+=(--access-logfile -) ;;
    esac
    # --preload: the master imports pretix once and every worker forks from it. Without
    # it each worker recycled after --max-requests imports pretix anew (1.3 CPU-s and its
    # first requests' warm-up); two workers of a replica recycle together (same start,
    # jitter 50) and stalled the replica for seconds on a loaded machine. Off by default:
    # pretix's own recipe does not preload.
    case "${PRETIX_GUNICORN_PRELOAD:-0}" in
        1|true|yes|on) args+=(--preload) ;;
    esac
    # shellcheck disable=SC2206
    [ -n "${PRETIX_GUNICORN_EXTRA_ARGS:-}" ] && args+=(${PRETIX_GUNICORN_EXTRA_ARGS})
    log "starting gunicorn: workers=$workers threads=$threads"
    exec gunicorn "${args[@]}" "$@"
    ;;

worker)
    require_config
    echo worker > "$ROLE_FILE"
    args=(
        -A pretix.celery_app worker
        -n "celery@${HOSTNAME}"
        -Q "${PRETIX_CELERY_QUEUES:-default,checkout,mail,background,notifications}"
        --loglevel "${PRETIX_CELERY_LOGLEVEL:-INFO}"
        --without-gossip --without-mingle
    )
    # Unset: celery's own default, one process per CPU (what pretix's Docker image runs).
    [ -n "${PRETIX_CELERY_CONCURRENCY:-}" ] && args+=(--concurrency "$PRETIX_CELERY_CONCURRENCY")
    # shellcheck disable=SC2206
    [ -n "${PRETIX_CELERY_EXTRA_ARGS:-}" ] && args+=(${PRETIX_CELERY_EXTRA_ARGS})
    log "starting celery worker celery@${HOSTNAME}"
    exec celery "${args[@]}" "$@"
    ;;

standalone)
    require_config
    echo standalone > "$ROLE_FILE"
    pids=()
    stop_children() { [ "${#pids[@]}" -gt 0 ] && kill -TERM "${pids[@]}" 2>/dev/null; return 0; }
    trap 'log "standalone: stopping web and worker"; stop_children' TERM INT
    # Each child records its role in its own file: ours stays "standalone".
    PRETIX_ROLE_FILE=/tmp/pretix-role-web "$0" web &
    pids+=("$!")
    PRETIX_ROLE_FILE=/tmp/pretix-role-worker "$0" worker &
    pids+=("$!")
    log "standalone: web (pid ${pids[0]}) and worker (pid ${pids[1]}) started"
    rc=0
    wait -n "${pids[@]}" || rc=$?
    log "standalone: a child ended (rc=$rc); stopping the other"
    stop_children
    wait "${pids[@]}" || true
    exit "$rc"
    ;;

cron)
    require_config
    echo cron > "$ROLE_FILE"
    interval="${PRETIX_CRON_INTERVAL:-300}"
    is_uint "$interval" && [ "$interval" -ge 1 ] || { log "ERROR: PRETIX_CRON_INTERVAL must be a positive integer"; exit 64; }
    run_timeout="${PRETIX_CRON_TIMEOUT:-$(( 2 * interval ))}"
    child=""
    trap 'log "cron: stopping"; [ -n "$child" ] && kill -TERM "$child" 2>/dev/null; exit 0' TERM INT
    touch "$HEARTBEAT"   # the loop is alive; first run follows immediately
    log "cron: runperiodic every ${interval}s (timeout ${run_timeout}s), heartbeat $HEARTBEAT"
    while true; do
        start=$(date +%s)
        timeout --kill-after=20 "$run_timeout" python -m pretix runperiodic "$@" &
        child=$!
        if wait "$child"; then rc=0; else rc=$?; fi
        child=""
        touch "$HEARTBEAT"
        echo "$rc $(date -u +%Y-%m-%dT%H:%M:%SZ)" > /tmp/cron-last-status
        elapsed=$(( $(date +%s) - start ))
        if [ "$rc" -eq 0 ]; then
            log "cron: runperiodic ok (${elapsed}s)"
        else
            log "cron: runperiodic FAILED rc=$rc (${elapsed}s); continuing"
        fi
        pause=$(( interval - elapsed ))
        [ "$pause" -lt 1 ] && pause=1
        sleep "$pause" &
        child=$!
        wait "$child" || true
        child=""
    done
    ;;

migrate)
    require_config
    echo migrate > "$ROLE_FILE"
    budget="${PRETIX_MIGRATE_TIMEOUT:-300}"
    attempts_max="${PRETIX_MIGRATE_ATTEMPTS:-3}"
    deadline=$(( $(date +%s) + budget ))
    attempt=0
    while true; do
        # 1. wait until the database answers
        until python -c 'import django; django.setup(); from django.db import connection; connection.ensure_connection()' 2>/tmp/dbwait.err; do
            if [ "$(date +%s)" -ge "$deadline" ]; then
                log "migrate: database not reachable within ${budget}s:"; grep -v '^[[:space:]]*$' /tmp/dbwait.err | tail -n 3 >&2
                exit 1
            fi
            log "migrate: waiting for the database: $(grep -v '^[[:space:]]*$' /tmp/dbwait.err | tail -n 1)"
            sleep 3
        done
        # 2. migrate (each migration is transactional on PostgreSQL, so a retry is safe)
        attempt=$(( attempt + 1 ))
        t0=$(date +%s)
        if python -m pretix migrate --noinput "$@"; then
            log "migrate: done in $(( $(date +%s) - t0 ))s"
            case "${PRETIX_UPDATE_CHECK:-off}" in
            on|1|true|yes) ;;
            *)
                # pretix's daily update check POSTs to pretix.eu from the first runperiodic on;
                # switch it off before any cron container can run.
                python -c 'import django; django.setup()
from pretix.base.settings import GlobalSettingsObject
s = GlobalSettingsObject().settings
if s.update_check_perform:
    s.set("update_check_perform", False); print("update check disabled")' \
                    || { log "migrate: could not disable the update check"; exit 1; }
                ;;
            esac
            exit 0
        fi
        if [ "$attempt" -ge "$attempts_max" ] || [ "$(date +%s)" -ge "$deadline" ]; then
            log "migrate: FAILED after $attempt attempt(s)"
            exit 1
        fi
        log "migrate: attempt $attempt failed, retrying in 5s"
        sleep 5
    done
    ;;

healthcheck)
    r="${1:-$(cat "$ROLE_FILE" 2>/dev/null || echo web)}"
    case "$r" in
    web|worker|cron)
        exec python /opt/pretix/healthcheck.py "$r"
        ;;
    standalone)
        "$0" healthcheck web && exec "$0" healthcheck worker
        ;;
    migrate)
        exit 0
        ;;
    *)
        log "healthcheck: unknown role '$r'"
        exit 2
        ;;
    esac
    ;;

manage)
    exec python -m pretix "$@"
    ;;

*)
    exec "$role" "$@"
    ;;
esac
