#!/usr/bin/env bash
# Start the MLflow UI (tracking server) on actstudy's store, bound to loopback.
#
# Usage: scripts/mlflow_ui.sh [PORT] [extra `mlflow server` options...]
#   PORT     first argument, else $ACTSTUDY_MLFLOW_PORT, else 5000
# Store:   $MLFLOW_TRACKING_URI when set (a database or file store URI), else the project's
#          sqlite:///<project root>/mlruns/mlflow.db with artifacts in <project root>/mlruns/artifacts.
#          Works from any working directory: the project root is found from this script's location.
# Host:    127.0.0.1 (override with $ACTSTUDY_MLFLOW_HOST; anything but loopback should also get
#          --allowed-hosts/--cors-allowed-origins, see `mlflow server --help`).
# Open the link a sweep prints at its end, or http://127.0.0.1:PORT/#/experiments/<id>/runs?workflowType=machine_learning
# (MLflow 3.17 opens on its GenAI view otherwise: switch "GenAI" to "Model training" at the top left).
# From a laptop: ssh -L 5000:127.0.0.1:5000 <host>, then browse http://127.0.0.1:5000.
#
# MLflow 3.17 needs no extra security flags for this: its default middleware allows localhost and
# 127.0.0.1 on any port. MLFLOW_SERVER_ENABLE_JOB_EXECUTION defaults to false here (the background
# job runner only serves GenAI features and adds a dozen processes); export it as true to keep it.
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
PORT=${1:-${ACTSTUDY_MLFLOW_PORT:-5000}}
[[ $# -gt 0 ]] && shift
HOST=${ACTSTUDY_MLFLOW_HOST:-127.0.0.1}

if ! [[ $PORT =~ ^[0-9]+$ ]]; then
    echo "mlflow_ui.sh: port must be a number, got '$PORT'" >&2
    exit 2
fi

ARGS=()
if [[ -n ${MLFLOW_TRACKING_URI:-} ]]; then
    case $MLFLOW_TRACKING_URI in
        http://* | https://*)
            echo "MLFLOW_TRACKING_URI is already a tracking server: open it in a browser."
            exit 0
            ;;
    esac
    STORE=$MLFLOW_TRACKING_URI
else
    mkdir -p "$ROOT/mlruns/artifacts"
    STORE="sqlite:///$ROOT/mlruns/mlflow.db"
    ARGS+=(--default-artifact-root "file://$ROOT/mlruns/artifacts")
fi

if command -v mlflow >/dev/null 2>&1; then
    MLFLOW=(mlflow)
else
    MLFLOW=("${PYTHON:-python}" -m mlflow)
fi

export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}
# the store's password as *** (actstudy.credentials; the URI goes through stdin, not a command line)
SHOWN=$(PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}" "${PYTHON:-python}" -c \
    'import sys; from actstudy.credentials import redact; print(redact(sys.stdin.read().strip()))' \
    <<<"$STORE" 2>/dev/null) || SHOWN="(not shown: ${PYTHON:-python} cannot import actstudy)"
echo "MLflow UI: http://$HOST:$PORT  (store: $SHOWN)"
cd "$ROOT"
export MLFLOW_BACKEND_STORE_URI=$STORE  # not an argument: every user sees a command line (ps)
exec "${MLFLOW[@]}" server "${ARGS[@]}" --host "$HOST" --port "$PORT" "$@"
