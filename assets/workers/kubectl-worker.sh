#!/bin/sh
# megascaler worker in a Kubernetes pod, so jobs spread over a cluster.
#
# Usage (config):  args: [assets/workers/kubectl-worker.sh]
# Starts one pod per job with `kubectl run -i --rm --restart=Never`; megascaler's stdin is attached
# to the pod, and the pod is deleted when the worker exits. Image: $MEGASCALER_K8S_IMAGE (default
# ghcr.io/christopherhx/github-act-runner:latest); namespace: $MEGASCALER_K8S_NAMESPACE (default
# the context's); extra `kubectl run` options in $MEGASCALER_K8S_OPTS (e.g. resource overrides).
# Expects: kubectl on PATH with a context allowed to create pods (set KUBECONFIG in the entry's `env:`; megascaler does not pass it on by default),
# and the worker as the image's command `github-act-runner worker` (or $MEGASCALER_K8S_WORKER).
set -eu
ns="${MEGASCALER_K8S_NAMESPACE:+--namespace=$MEGASCALER_K8S_NAMESPACE}"
# shellcheck disable=SC2086
exec kubectl run "megascaler-job-${MEGASCALER_JOB_ID:-$$}" $ns -i --rm --quiet --restart=Never \
  --image="${MEGASCALER_K8S_IMAGE:-ghcr.io/christopherhx/github-act-runner:latest}" \
  --labels="app=megascaler-worker,megascaler-job=${MEGASCALER_JOB_ID:-none}" \
  ${MEGASCALER_K8S_OPTS:-} --command -- ${MEGASCALER_K8S_WORKER:-github-act-runner worker}
