#!/bin/bash
# Container healthcheck: this member's HTTP server answers GET /version.
#
# Deliberately NOT `etcdctl endpoint health` (a quorum read): in Swarm a task
# only becomes resolvable by its peers once it is healthy, so a check that
# needs quorum deadlocks a fresh cluster (no member healthy -> no peer can
# resolve another -> no quorum), and Swarm would keep killing members that
# merely wait for their peers. Quorum is reported by `pretix-cluster status`.
set -euo pipefail
exec 3<>"/dev/tcp/127.0.0.1/${ETCD_CLIENT_PORT:-2379}"
printf 'GET /version HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
timeout 4 grep -q '"etcdserver"' <&3
