#!/bin/sh
# The Prefect part of the init step: the `cpu` and `gpu` work pools, then every deployment in
# prefect.yaml (`prefect deploy --all`). Idempotent: pools are overwritten with the templates in
# git, deployments are updated in place. Runs once per stack (compose service `prefect-init`),
# from any machine that reaches the Prefect API; tests/integration/test_prefect_deploy.py runs it.
#
#   PREFECT_API_URL=http://127.0.0.1:4200/api infra/prefect/init.sh
#   XFER_GPU_POOL_TYPE=kubernetes ... infra/prefect/init.sh     # gpu pool = k8s Jobs
#
set -eu

: "${PREFECT_API_URL:?set PREFECT_API_URL to the Prefect server API (e.g. http://prefect-server:4200/api)}"
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
prefect=${PREFECT_BIN:-prefect}

gpu_type=${XFER_GPU_POOL_TYPE:-process}
case "$gpu_type" in
  process) gpu_template="$here/gpu-job-template.json" ;;
  kubernetes) gpu_template="$repo/infra/k8s/gpu-job-template.json" ;;
  *) echo "XFER_GPU_POOL_TYPE=$gpu_type: expected process or kubernetes" >&2; exit 2 ;;
esac

"$prefect" --no-prompt work-pool create cpu --type process --overwrite
"$prefect" --no-prompt work-pool create gpu --type "$gpu_type" \
  --base-job-template "$gpu_template" --overwrite
# `prefect deploy` fills every `{{ $VAR }}` it finds from *this* process's environment, pull steps
# included (prefect/utilities/templating: apply_values reads os.environ for `$` placeholders; only
# unset ones stay templates). The pull step's variables belong to the workers: a value exported
# here would be baked into every deployment, so they are cleared for the deploy.
unset XFER_REPO_URL XFER_REPO_BRANCH XFER_REPO_TOKEN
cd "$repo"
"$prefect" --no-prompt deploy --all --prefect-file prefect.yaml
