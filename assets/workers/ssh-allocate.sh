#!/bin/sh
# megascaler allocate for ssh workers: picks the least busy host from the list.
#
# Usage (config):  allocate: [assets/workers/ssh-allocate.sh, build-1.example.com, user@build-2:2222]
# Prints the chosen host ([user@]host[:port]) on stdout; megascaler puts it in {target}.
# Bookkeeping: one file per running job in ${MEGASCALER_SSH_STATE:-$HOME/.megascaler-ssh} (mode 700,
# owned by megascaler's user), removed by
# ssh-release.sh, so concurrent jobs spread over the hosts. Expects nothing on the hosts.
set -eu
[ "$#" -ge 1 ] || { echo "ssh-allocate.sh: give at least one host" >&2; exit 2; }
state="${MEGASCALER_SSH_STATE:-$HOME/.megascaler-ssh}"
mkdir -p -m 700 "$state"
[ -O "$state" ] || { echo "ssh-allocate.sh: $state is not owned by $(id -un)" >&2; exit 2; }
best=""; best_n=""
for host in "$@"; do
  key="$(printf '%s' "$host" | tr -c 'A-Za-z0-9._-' '_')"
  n="$(find "$state" -maxdepth 1 -name "$key.job-*" 2>/dev/null | wc -l)"
  if [ -z "$best_n" ] || [ "$n" -lt "$best_n" ]; then best="$host"; best_n="$n"; fi
done
key="$(printf '%s' "$best" | tr -c 'A-Za-z0-9._-' '_')"
: > "$state/$key.job-${MEGASCALER_JOB_ID:-$$}"
printf '%s\n' "$best"
