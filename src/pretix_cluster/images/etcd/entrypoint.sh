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

if [ -d "$ETCD_DATA_DIR/member" ]; then
    echo "entrypoint: $ETCD_DATA_DIR holds member data: rejoining, ETCD_INITIAL_CLUSTER* are ignored" >&2
else
    echo "entrypoint: empty data dir: bootstrapping member $ETCD_NAME of $ETCD_INITIAL_CLUSTER" >&2
fi
exec /usr/bin/etcd "$@"
