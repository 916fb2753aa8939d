#!/bin/sh
# megascaler release for ssh workers: frees the host slot taken by ssh-allocate.sh.
#
# Usage (config):  release: [assets/workers/ssh-release.sh, "{target}"]
# Runs after the worker exits, whatever happened. Expects nothing on the host.
set -eu
state="${MEGASCALER_SSH_STATE:-$HOME/.megascaler-ssh}"
[ -d "$state" ] && [ -O "$state" ] || exit 0
key="$(printf '%s' "${1:-}" | tr -c 'A-Za-z0-9._-' '_')"
rm -f "$state/$key.job-${MEGASCALER_JOB_ID:-$$}"
