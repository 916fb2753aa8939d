#!/bin/sh
# megascaler worker on this machine.
#
# Usage (config):  args: [assets/workers/local-worker.sh, /usr/local/bin/github-act-runner, worker]
# Runs the given worker command in a fresh working directory under ${MEGASCALER_WORK_ROOT:-/tmp}
# and removes the directory afterwards. stdin (megascaler's frames) goes straight to the worker.
# Expects on this machine: the worker program (github-act-runner, or
# `megascaler worker-adapter /path/to/bin/Runner.Worker` with its .runner file, see README.md).
set -eu
[ "$#" -ge 1 ] || { echo "usage: local-worker.sh WORKER [ARGS...]" >&2; exit 2; }
root="${MEGASCALER_WORK_ROOT:-${TMPDIR:-/tmp}}"
work="$(mktemp -d "$root/megascaler-job-${MEGASCALER_JOB_ID:-x}.XXXXXX")"
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
cd "$work"
# Not exec: the trap must run after the worker. Signals reach the worker through the process group.
"$@"
