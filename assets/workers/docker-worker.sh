#!/bin/sh
# megascaler worker in a docker container started by docker-allocate.sh.
#
# Usage (config):  args: [assets/workers/docker-worker.sh, "{target}"]
# Runs $MEGASCALER_DOCKER_WORKER (default `github-act-runner worker`) inside the container with
# megascaler's stdin attached (`docker exec -i`). Expects the worker on the image's PATH.
set -eu
[ "$#" -eq 1 ] || { echo "usage: docker-worker.sh CONTAINER" >&2; exit 2; }
# shellcheck disable=SC2086
exec docker exec -i -- "$1" ${MEGASCALER_DOCKER_WORKER:-github-act-runner worker}
