#!/bin/sh
# megascaler worker over ssh: runs the worker on TARGET with megascaler's stdin forwarded.
#
# Usage (config):  args: [assets/workers/ssh-worker.sh, "{target}"]
# TARGET is [user@]host[:port]. The remote command is $MEGASCALER_SSH_WORKER (default
# `github-act-runner worker`); extra ssh options in $MEGASCALER_SSH_OPTS (e.g.
# "-i /etc/megascaler/id_ed25519 -o StrictHostKeyChecking=accept-new"). Put both in the worker
# entry's `env:` (with SSH_AUTH_SOCK there too if the key is in an agent: megascaler does not pass it
# on by default). Expects on the target: sshd accepting the key non-interactively (BatchMode) and
# the worker program on its PATH. The job message travels over ssh's stdin only; nothing secret
# is put on the command line. ssh exits with the remote command's exit code.
set -eu
[ "$#" -eq 1 ] || { echo "usage: ssh-worker.sh [user@]host[:port]" >&2; exit 2; }
target="$1"; port=""
case "$target" in
  *:*) port="${target##*:}"; target="${target%:*}" ;;
esac
# shellcheck disable=SC2086 # MEGASCALER_SSH_OPTS is a list of options.
exec ssh -T -o BatchMode=yes ${port:+-p "$port"} ${MEGASCALER_SSH_OPTS:-} -- "$target" \
  "${MEGASCALER_SSH_WORKER:-github-act-runner worker}"
