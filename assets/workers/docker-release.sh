#!/bin/sh
# megascaler release for docker workers: removes the job's container, whatever happened.
#
# Usage (config):  release: [assets/workers/docker-release.sh, "{target}"]
set -eu
[ -n "${1:-}" ] || exit 0
docker rm -f -- "$1" >/dev/null
