#!/bin/sh
# Start a lab node's dockerd, its TCP API reachable only from the lab's host.
#   lab-node ADMIN_ADDRESS API_PORT DOCKERD_ARGUMENTS...
# dockerd listens on the node's address on the lab bridge without TLS, so the
# firewall of the node's own network namespace accepts that port from the
# host's end of the bridge only: neither the other nodes nor any container
# running inside the lab (whose traffic leaves a node masqueraded) can reach
# a Docker API. The rules live in the namespace, so every start sets them anew.
set -eu
admin=$1
port=$2
shift 2
iptables -I INPUT -p tcp --dport "$port" -j DROP
iptables -I INPUT -p tcp --dport "$port" -s "$admin" -j ACCEPT
exec dockerd "$@"
