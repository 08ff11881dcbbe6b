#!/bin/sh
# Make this machine able to run the cluster: Docker daemon up, debootstrap present.
# Idempotent; installs only what is missing. Needs root on a fresh Debian/Ubuntu machine.
set -eu

missing=""
command -v dockerd >/dev/null 2>&1 || missing="$missing docker.io"
command -v debootstrap >/dev/null 2>&1 || missing="$missing debootstrap"
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing="$missing python3-venv"
if [ -n "$missing" ]; then
    echo "installing:$missing"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing
fi

if ! docker info >/dev/null 2>&1; then
    echo "starting dockerd (log: /var/log/dockerd.log)"
    # No systemd on every machine: start the daemon ourselves, detached from this shell.
    nohup dockerd >/var/log/dockerd.log 2>&1 &
    tries=0
    until docker info >/dev/null 2>&1; do
        tries=$((tries + 1))
        if [ "$tries" -gt 60 ]; then
            echo "dockerd did not start within 60 s; see /var/log/dockerd.log" >&2
            exit 2
        fi
        sleep 1
    done
fi
