#!/usr/bin/env bash
# An MLflow tracking server for a cluster: one service process that every SLURM job logs to over HTTP,
# so no job opens the store itself (SQLite on a shared file system locks badly and can corrupt).
#
# Usage: scripts/mlflow_server.sh start [options]   start in the background, wait until /health answers
#        scripts/mlflow_server.sh stop               stop the server started from the same --dir
#        scripts/mlflow_server.sh status             say whether it runs and answers
# Options (start):
#   --host HOST           bind address (default 127.0.0.1: only this machine; use 0.0.0.0 or the
#                         node's cluster IP so compute nodes can reach it)
#   --port PORT           default 5000
#   --backend-store-uri URI  default sqlite:///DIR/mlflow.db, on this node's LOCAL disk; or a database,
#                         e.g. postgresql://user:pw@dbhost:5432/mlflow (driver: pip install -e ".[server]")
#   --artifacts-destination URI  where the server writes artifacts it serves (--serve-artifacts is
#                         always on: jobs upload through HTTP, they need no access to this path);
#                         default DIR/artifacts; s3://..., a shared path, ... also work
#   --workers N           server worker processes (default 2)
#   --dir DIR             state folder: pid file, log, default store and artifacts
#                         (default $ACTSTUDY_MLFLOW_DIR, else /var/tmp/actstudy-mlflow-$USER: local disk)
#   anything after `--` goes to `mlflow server` unchanged (e.g. -- --allowed-hosts mlflow.example.org)
# Jobs then use: export MLFLOW_TRACKING_URI=http://HOST:PORT   (or tracking.uri=http://HOST:PORT)
# A job whose server is down fails within seconds (exit 2) instead of training without tracking; a
# running job waits for a restarted server (stop, then start with the same options) up to
# tracking.server_wait_s (default 300 s) and loses nothing.
set -euo pipefail

die() { echo "mlflow_server.sh: $*" >&2; exit 2; }
CMD=${1:-}
[[ $# -gt 0 ]] && shift
HOST=127.0.0.1 PORT=5000 WORKERS=2 STORE="" ARTIFACTS=""
DIR=${ACTSTUDY_MLFLOW_DIR:-/var/tmp/actstudy-mlflow-$(id -un)}
EXTRA=()
while [[ $# -gt 0 ]]; do
    case $1 in
        --host) HOST=${2:?}; shift 2 ;;
        --port) PORT=${2:?}; shift 2 ;;
        --backend-store-uri) STORE=${2:?}; shift 2 ;;
        --artifacts-destination) ARTIFACTS=${2:?}; shift 2 ;;
        --workers) WORKERS=${2:?}; shift 2 ;;
        --dir) DIR=${2:?}; shift 2 ;;
        --) shift; EXTRA+=("$@"); break ;;
        *) die "unknown option '$1' (see the header of $0)" ;;
    esac
done
[[ $PORT =~ ^[0-9]+$ ]] || die "port must be a number, got '$PORT'"
PIDFILE=$DIR/mlflow-server.pid
LOG=$DIR/mlflow-server.log
URL_FILE=$DIR/mlflow-server.url

running_pid() {  # pid of the server started from $DIR, if it is alive
    local pid
    pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

healthy() { python - "$1" <<'EOF'
import sys, urllib.request
try:
    sys.exit(0 if urllib.request.urlopen(sys.argv[1] + "/health", timeout=2).status == 200 else 1)
except Exception:
    sys.exit(1)
EOF
}

start() {
    if pid=$(running_pid); then
        echo "mlflow server already running (pid $pid): $(cat "$URL_FILE" 2>/dev/null)"
        return 0
    fi
    mkdir -p "$DIR"
    STORE=${STORE:-sqlite:///$DIR/mlflow.db}
    if [[ $STORE == postgresql* ]] && ! "${PYTHON:-python}" -c "import psycopg" 2>/dev/null; then
        die "the PostgreSQL driver is missing: pip install -e \".[server]\" (psycopg 3)"
    fi
    ARTIFACTS=${ARTIFACTS:-$DIR/artifacts}
    [[ $ARTIFACTS == *://* ]] || mkdir -p "$ARTIFACTS"
    local client_host=$HOST
    if [[ $HOST == 0.0.0.0 || $HOST == "::" ]]; then client_host=$(hostname -f 2>/dev/null || hostname); fi
    local url="http://$client_host:$PORT" args=()
    if [[ $HOST != 127.0.0.1 && $HOST != localhost && " ${EXTRA[*]} " != *" --allowed-hosts "* ]]; then
        # MLflow only accepts localhost and private-IP Host headers by default: add this node's names
        local hosts="localhost,localhost:$PORT,127.0.0.1:$PORT,$HOST:$PORT,$(hostname):$PORT"
        hosts+=",$(hostname -f 2>/dev/null || hostname):$PORT"
        for ip in $(hostname -I 2>/dev/null); do hosts+=",$ip:$PORT"; done
        args+=(--allowed-hosts "$hosts")
    fi
    local mlflow=(mlflow)
    command -v mlflow >/dev/null 2>&1 || mlflow=("${PYTHON:-python}" -m mlflow)
    # the GenAI background job runner adds a dozen processes and is not used by actstudy
    export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}
    setsid "${mlflow[@]}" server --backend-store-uri "$STORE" --serve-artifacts \
        --artifacts-destination "$ARTIFACTS" --host "$HOST" --port "$PORT" --workers "$WORKERS" \
        "${args[@]}" "${EXTRA[@]}" </dev/null >>"$LOG" 2>&1 &
    local pid=$!
    echo "$pid" >"$PIDFILE"
    echo "$url" >"$URL_FILE"
    for _ in $(seq 1 120); do
        if healthy "http://127.0.0.1:$PORT" || healthy "$url"; then
            echo "mlflow server up (pid $pid): $url  store: $STORE  artifacts: $ARTIFACTS  log: $LOG"
            echo "jobs: export MLFLOW_TRACKING_URI=$url"
            [[ $HOST == 127.0.0.1 ]] && echo "note: bound to 127.0.0.1, compute nodes cannot reach it (--host 0.0.0.0)"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || { tail -n 20 "$LOG" >&2; rm -f "$PIDFILE"; die "mlflow server exited, see $LOG"; }
        sleep 0.5
    done
    tail -n 20 "$LOG" >&2
    die "mlflow server (pid $pid) not answering on port $PORT after 60 s, see $LOG"
}

stop() {
    local pid
    if ! pid=$(running_pid); then
        echo "mlflow server not running (no live pid in $PIDFILE)"
        rm -f "$PIDFILE"
        return 0
    fi
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"  # its process group: the server and its workers
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"; fi
    rm -f "$PIDFILE"
    echo "mlflow server stopped (pid $pid)"
}

status() {
    local pid url
    url=$(cat "$URL_FILE" 2>/dev/null || echo "?")
    if pid=$(running_pid); then
        if healthy "$url" || healthy "http://127.0.0.1:${url##*:}"; then
            echo "mlflow server running (pid $pid) and healthy: $url"
            return 0
        fi
        echo "mlflow server running (pid $pid) but not answering: $url"
        return 1
    fi
    echo "mlflow server not running"
    return 3
}

case $CMD in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status [--host H] [--port P] [--backend-store-uri URI] [--artifacts-destination URI] [--dir DIR] [-- mlflow options]" >&2; exit 2 ;;
esac
