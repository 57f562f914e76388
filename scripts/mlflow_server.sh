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
#                         e.g. postgresql://user@dbhost:5432/mlflow (driver: pip install -e ".[server]").
#                         A URI with a password is refused here (every user sees a command line in ps):
#   --backend-store-uri-file FILE  read the store URI from FILE, readable only by you (chmod 600), or
#                         set ACTSTUDY_MLFLOW_STORE_URI in the environment. The URI reaches `mlflow server`
#                         through its environment (MLFLOW_BACKEND_STORE_URI), never its command line,
#                         and is printed with its password as ***.
#   --auth / --no-auth    MLflow's basic-auth app: every request but /health needs a user and password.
#                         On by default when --host is not loopback (a cluster's server), off on
#                         127.0.0.1. Its users database is DIR/basic_auth.db; the admin account `admin`
#                         gets the password in $MLFLOW_AUTH_ADMIN_PASSWORD, else a random one written to
#                         DIR/admin-password (chmod 600) on the first start. Jobs pass credentials with
#                         MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD (docs/slurm.md).
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
ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
# the URI with its password as *** (actstudy.credentials, from this checkout; the URI goes through stdin)
redact() {
    PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}" "${PYTHON:-python}" -c \
        'import sys; from actstudy.credentials import redact; print(redact(sys.stdin.read().strip()))' <<<"$1" \
        || die "cannot run ${PYTHON:-python} with actstudy (set PYTHON to the project's interpreter)"
}
read_private() {  # the first line of a file that only its owner can read
    [[ -f $1 && -r $1 ]] || die "cannot read $1"
    local mode
    mode=$(stat -c %a "$1")
    (( (8#$mode & 8#077) == 0 )) || die "$1 is readable by others (mode $mode): chmod 600 $1"
    head -n 1 "$1"
}
random_secret() { "${PYTHON:-python}" -c 'import secrets; print(secrets.token_urlsafe(24))'; }
CMD=${1:-}
[[ $# -gt 0 ]] && shift
HOST=127.0.0.1 PORT=5000 WORKERS=2 STORE=${ACTSTUDY_MLFLOW_STORE_URI:-} ARTIFACTS="" AUTH=""
DIR=${ACTSTUDY_MLFLOW_DIR:-/var/tmp/actstudy-mlflow-$(id -un)}
EXTRA=()
while [[ $# -gt 0 ]]; do
    case $1 in
        --host) HOST=${2:?}; shift 2 ;;
        --port) PORT=${2:?}; shift 2 ;;
        --backend-store-uri) STORE=${2:?}; shift 2
            SHOWN=$(redact "$STORE")
            [[ $SHOWN == "$STORE" ]] || die "--backend-store-uri $SHOWN: a password on \
the command line is shown to every user (ps); put the URI in a file readable only by you \
(--backend-store-uri-file FILE) or in ACTSTUDY_MLFLOW_STORE_URI" ;;
        --backend-store-uri-file) STORE=$(read_private "${2:?}"); shift 2 ;;
        --auth) AUTH=on; shift ;;
        --no-auth) AUTH=off; shift ;;
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
    # the store, the users database and the generated secrets live here: a new folder is private
    [[ -d $DIR ]] || mkdir -p -m 700 "$DIR"
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
    if [[ -z $AUTH ]]; then
        case $HOST in 127.0.0.1 | localhost | ::1) AUTH=off ;; *) AUTH=on ;; esac
    fi
    if [[ $AUTH == on ]]; then
        "${PYTHON:-python}" -c "import flask_wtf" 2>/dev/null \
            || die "MLflow's basic-auth app needs Flask-WTF: pip install -e \".[server]\" (mlflow[auth])"
        umask 077
        [[ -s $DIR/flask-secret ]] || random_secret >"$DIR/flask-secret"
        if [[ -z ${MLFLOW_AUTH_ADMIN_PASSWORD:-} && ! -s $DIR/basic_auth.db ]]; then
            [[ -s $DIR/admin-password ]] || random_secret >"$DIR/admin-password"
        fi
        [[ -n ${MLFLOW_AUTH_ADMIN_PASSWORD:-} || ! -s $DIR/admin-password ]] \
            || MLFLOW_AUTH_ADMIN_PASSWORD=$(read_private "$DIR/admin-password")
        printf '[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:///%s/basic_auth.db\nadmin_username = admin\nauthorization_function = mlflow.server.auth:authenticate_request_basic_auth\n' \
            "$DIR" >"$DIR/basic_auth.ini"
        export MLFLOW_AUTH_CONFIG_PATH=$DIR/basic_auth.ini MLFLOW_AUTH_ADMIN_PASSWORD
        MLFLOW_FLASK_SERVER_SECRET_KEY=$(read_private "$DIR/flask-secret")
        export MLFLOW_FLASK_SERVER_SECRET_KEY
        args+=(--app-name basic-auth)
    else
        [[ $HOST == 127.0.0.1 || $HOST == localhost || $HOST == ::1 ]] || echo "mlflow_server.sh: warning:" \
            "--no-auth on $HOST: anyone who can reach port $PORT can read, change and delete every run" >&2
    fi
    local mlflow=(mlflow)
    command -v mlflow >/dev/null 2>&1 || mlflow=("${PYTHON:-python}" -m mlflow)
    # the GenAI background job runner adds a dozen processes and is not used by actstudy
    export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}
    export MLFLOW_BACKEND_STORE_URI=$STORE  # not an argument: a command line is public (ps)
    setsid "${mlflow[@]}" server --serve-artifacts \
        --artifacts-destination "$ARTIFACTS" --host "$HOST" --port "$PORT" --workers "$WORKERS" \
        "${args[@]}" "${EXTRA[@]}" </dev/null >>"$LOG" 2>&1 &
    local pid=$!
    echo "$pid" >"$PIDFILE"
    echo "$url" >"$URL_FILE"
    for _ in $(seq 1 120); do
        if healthy "http://127.0.0.1:$PORT" || healthy "$url"; then
            echo "mlflow server up (pid $pid): $url  store: $(redact "$STORE")  artifacts: $ARTIFACTS  log: $LOG"
            echo "jobs: export MLFLOW_TRACKING_URI=$url"
            if [[ $AUTH == on ]]; then
                local secret='$MLFLOW_AUTH_ADMIN_PASSWORD'
                [[ -s $DIR/admin-password ]] && secret="\$(cat $DIR/admin-password)"
                echo "auth: basic-auth (users: $DIR/basic_auth.db); jobs also:" \
                    "export MLFLOW_TRACKING_USERNAME=admin MLFLOW_TRACKING_PASSWORD=\"$secret\""
            fi
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
    *) echo "usage: $0 start|stop|status [--host H] [--port P] [--backend-store-uri URI | --backend-store-uri-file FILE] [--auth | --no-auth] [--artifacts-destination URI] [--dir DIR] [-- mlflow options]" >&2; exit 2 ;;
esac
