#!/bin/bash
# pretix-cluster etcd member entrypoint: fill in name-based defaults, then exec etcd.
#
# Every etcd flag can be given as an ETCD_* environment variable (ETCD_NAME for
# --name, ...); etcd reads them itself. This script only derives defaults:
#   ETCD_NAME                          required, e.g. etcd-1 (== the member's DNS name)
#   ETCD_INITIAL_CLUSTER               default etcd-1=http://etcd-1:2380,...,etcd-3=http://etcd-3:2380
#   ETCD_INITIAL_ADVERTISE_PEER_URLS   default http://$ETCD_NAME:2380
#   ETCD_ADVERTISE_CLIENT_URLS         default http://$ETCD_NAME:2379
# (Image defaults: ETCD_DATA_DIR=/var/lib/etcd/data, listen on 0.0.0.0:2379/2380,
#  ETCD_INITIAL_CLUSTER_STATE=new, ETCD_INITIAL_CLUSTER_TOKEN=pretix-cluster-etcd,
#  periodic auto-compaction keeping 1h of history.)
#
#   PEER_CLIENT_ENDPOINTS              the other members' client URLs, comma-separated:
#                                      asked whether a cluster already runs (see below)
# Names, never IPs: container IPs change on restart, names do not. Once the data
# dir holds a member, etcd ignores ETCD_INITIAL_CLUSTER* (the membership is in its
# WAL), so a restarted member rejoins with its data.
#
# Arguments: none or options starting with "-" -> passed to etcd; anything else
# (e.g. "bash", "etcdctl ...") -> exec'd as is.
set -euo pipefail

if [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ]; then
    exec "$@"
fi

die() { echo "entrypoint: ERROR: $*" >&2; exit 1; }

[ -n "${ETCD_NAME:-}" ] || die "ETCD_NAME is not set (use the service name, e.g. etcd-1)"
case "$ETCD_NAME" in
    *[!A-Za-z0-9._-]*) die "ETCD_NAME '$ETCD_NAME' must be a DNS name" ;;
esac
export ETCD_INITIAL_CLUSTER="${ETCD_INITIAL_CLUSTER:-etcd-1=http://etcd-1:2380,etcd-2=http://etcd-2:2380,etcd-3=http://etcd-3:2380}"
export ETCD_INITIAL_ADVERTISE_PEER_URLS="${ETCD_INITIAL_ADVERTISE_PEER_URLS:-http://$ETCD_NAME:2380}"
export ETCD_ADVERTISE_CLIENT_URLS="${ETCD_ADVERTISE_CLIENT_URLS:-http://$ETCD_NAME:2379}"
export ETCD_DATA_DIR="${ETCD_DATA_DIR:-/var/lib/etcd/data}"

case ",$ETCD_INITIAL_CLUSTER," in
    *",$ETCD_NAME="*) ;;
    *) die "ETCD_INITIAL_CLUSTER does not list this member ($ETCD_NAME)" ;;
esac

parent="$(dirname "$ETCD_DATA_DIR")"
[ -w "$parent" ] || die "$parent is not writable by uid $(id -u) (owner: $(stat -c %u:%g "$parent")); chown -R 998:998 the volume"

log() { echo "entrypoint: $*" >&2; }

# The running cluster's membership as `etcdctl member list` prints it (id, status,
# name, peer URLs, client URLs, learner), asked of the other members; empty when
# none answers (a cluster being created, or no quorum). Listing members needs no
# login; removing and adding one needs etcd's root user (etcdctl-root).
membership() {
    [ -n "${PEER_CLIENT_ENDPOINTS:-}" ] || return 0
    etcdctl --endpoints="$PEER_CLIENT_ENDPOINTS" --dial-timeout=2s --command-timeout=5s \
        member list -w simple 2>/dev/null || true
}

# An empty data dir in a cluster that already runs: this member lost its disk (its
# node died for good and Swarm placed it on another) or never started. etcd cannot
# bootstrap it with state "new" then; the member is (re)added and joins as
# "existing", with no etcdctl for the operator. A member that still holds data is
# never touched.
join_running_cluster() {
    local members line id status
    members="$(membership)"
    if [ -z "$members" ]; then
        log "empty data dir, no peer answers: bootstrapping member $ETCD_NAME of $ETCD_INITIAL_CLUSTER"
        return
    fi
    line="$(awk -F', ' -v url="$ETCD_INITIAL_ADVERTISE_PEER_URLS" '$4 == url' <<<"$members")"
    id="$(cut -d, -f1 <<<"$line")"
    status="$(awk -F', ' '{print $2}' <<<"$line")"
    if [ "$status" = "started" ]; then
        log "empty data dir but the cluster knows $ETCD_NAME ($id) as started: its data is lost; replacing the member"
        etcdctl-root --endpoints="$PEER_CLIENT_ENDPOINTS" --command-timeout=10s member remove "$id" >&2
        line=""
    fi
    if [ -z "$line" ]; then
        log "adding $ETCD_NAME ($ETCD_INITIAL_ADVERTISE_PEER_URLS) to the running cluster"
        etcdctl-root --endpoints="$PEER_CLIENT_ENDPOINTS" --command-timeout=10s \
            member add "$ETCD_NAME" --peer-urls="$ETCD_INITIAL_ADVERTISE_PEER_URLS" >&2
    fi
    log "joining the running cluster as an existing member"
    export ETCD_INITIAL_CLUSTER_STATE=existing
}

if [ -d "$ETCD_DATA_DIR/member" ]; then
    log "$ETCD_DATA_DIR holds member data: rejoining, ETCD_INITIAL_CLUSTER* are ignored"
else
    join_running_cluster
fi
exec /usr/bin/etcd "$@"
