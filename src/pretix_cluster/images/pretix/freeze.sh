#!/bin/bash
# Regenerate requirements.txt: resolve pretix + gunicorn + django-storages[s3] in the
# same Debian base and Python as the image, print a full `pip freeze --all`.
#   PRETIX_VERSION=2026.8.0 GUNICORN_VERSION=27.0.1 ./freeze.sh > /tmp/freeze.txt
# Needs build-ca.crt in this directory (copy of the host's CA bundle).
set -euo pipefail
cd "$(dirname "$0")"
PRETIX_VERSION="${PRETIX_VERSION:-2026.8.0}"
GUNICORN_VERSION="${GUNICORN_VERSION:-27.0.1}"
STORAGES_VERSION="${STORAGES_VERSION:-1.14.6}"
BASE_IMAGE="${BASE_IMAGE:-debian:bookworm-slim}"
docker run --rm -i --name "pretix-cluster-freeze-$$" -v "$PWD/build-ca.crt:/build-ca.crt:ro" "$BASE_IMAGE" bash -s \
    "$PRETIX_VERSION" "$GUNICORN_VERSION" "$STORAGES_VERSION" <<'INNER'
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive PIP_CERT=/build-ca.crt PIP_DISABLE_PIP_VERSION_CHECK=1
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends python3=3.11.2-1+b1 python3-venv=3.11.2-1+b1 >/dev/null 2>&1
python3 -m venv /v
/v/bin/pip install -q "pretix==$1" "gunicorn==$2" "django-storages[s3]==$3" >&2
/v/bin/pip check >&2
/v/bin/pip freeze --all
INNER
