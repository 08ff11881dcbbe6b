#!/bin/sh
# registry-serve [CONFIG [USER]]: docker-registry with CONFIG; with USER, first the htpasswd
# file its config names (/run/docker-registry/htpasswd), made from the Docker secret
# registry_password: read on stdin (-i), never on a command line; bcrypt (-B).
set -eu
config=${1:-/etc/docker/registry/config.yml}
if [ $# -ge 2 ]; then
    htpasswd -i -B -c /run/docker-registry/htpasswd "$2" < /run/secrets/registry_password
fi
exec /usr/bin/docker-registry serve "$config"
