#!/bin/bash
# Container healthcheck: this member's peer server answers GET /version.
#
# Deliberately no quorum and not the client port: in Swarm a task becomes
# resolvable by its peers only once it is healthy, and etcd serves clients
# only after it has joined a cluster. A check that needs either deadlocks a
# fresh cluster (no member healthy -> no peer can resolve another -> no
# quorum) and Swarm would keep killing members that merely wait for peers.
# The peer server runs from the start; quorum is shown by `pretix-cluster status`.
# The port is the one etcd listens on (ETCD_LISTEN_PEER_URLS, from spec.PORTS);
# not an env var of its own: etcd warns about every ETCD_* it does not know.
set -euo pipefail
exec 3<>"/dev/tcp/127.0.0.1/${ETCD_LISTEN_PEER_URLS##*:}"
printf 'GET /version HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
# Only the status line: etcd does not always close the socket, so never wait for EOF.
IFS= read -r -t 4 status <&3
[[ "$status" == "HTTP/1."?" 200"* ]]
