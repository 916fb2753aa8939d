#!/bin/sh
# megascaler allocate for docker workers: starts a fresh container for one job.
#
# Usage (config):  allocate: [assets/workers/docker-allocate.sh]
# Image: $MEGASCALER_DOCKER_IMAGE (default ghcr.io/christopherhx/github-act-runner:latest); extra
# `docker run` options in $MEGASCALER_DOCKER_OPTS (e.g. "--cpus 4 --memory 8g"). Prints the
# container id; megascaler puts it in {target}. Expects: a docker daemon reachable as the user
# megascaler runs as (set DOCKER_HOST in the entry's `env:` for a remote daemon), and an image with the worker and `sleep`.
set -eu
image="${MEGASCALER_DOCKER_IMAGE:-ghcr.io/christopherhx/github-act-runner:latest}"
# shellcheck disable=SC2086
docker run -d --init --name "megascaler-job-${MEGASCALER_JOB_ID:-$$}" \
  --label "megascaler.job=${MEGASCALER_JOB_ID:-}" ${MEGASCALER_DOCKER_OPTS:-} \
  --entrypoint sleep "$image" infinity
