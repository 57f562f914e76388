#!/usr/bin/env bash
# Test fixture: a throwaway PostgreSQL cluster on 127.0.0.1 for actstudy's system tests (tests/system,
# marker `postgres`): the MLflow tracking server's database. Cluster users do NOT need this: they point
# `scripts/mlflow_server.sh start --backend-store-uri postgresql://...` at their site's database.
#
# Usage: scripts/local_postgres.sh install | start DIR [PORT] | stop DIR | status DIR
#   install  apt-get Debian's `postgresql` package if no PostgreSQL server is installed. Needs root.
#   start    initdb DIR/data on first use (trust authentication, loopback only), start the server on
#            PORT (default 55432) with its socket and log in DIR, create the database `mlflow`, and print
#            its URI: postgresql://postgres@127.0.0.1:PORT/mlflow. Idempotent: a running one is reused.
#   stop     fast shutdown of the server of DIR (only that one).
#   status   exit 0 if the server of DIR runs.
# Without systemd. As root the server runs as the `postgres` user (PostgreSQL refuses root); as another
# user it runs as that user. The MLflow server needs the psycopg driver: pip install -e ".[server]".
set -euo pipefail

die() { echo "local_postgres.sh: $*" >&2; exit 1; }
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

install() {
  [[ -n $(pg_bin) ]] && { echo "local_postgres.sh: PostgreSQL already installed ($(pg_bin))"; return 0; }
  [[ $(id -u) == 0 ]] || die "install needs root"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql
}

as_owner() {  # run a command as the cluster's owner
  if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  local dir=$1 port=$2 bin
  bin=$(pg_bin)
  [[ -n $bin ]] || die "PostgreSQL is not installed; run: bash $0 install (as root)"
  [[ $port =~ ^[0-9]+$ ]] || die "port must be a number, got '$port'"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [[ $(id -u) == 0 ]]; then
    chown postgres "$dir"
    runuser -u postgres -- test -x "$dir" || die "user postgres cannot enter $dir (a parent folder is private?)"
  fi
  if [[ ! -d $dir/data ]]; then
    as_owner "$bin/initdb" -D "$dir/data" -A trust -U postgres >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
  fi
  if ! as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1" start >/dev/null \
      || { tail -n 20 "$dir/server.log" >&2; die "the server did not start, see $dir/server.log"; }
  fi
  local psql=("$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -v ON_ERROR_STOP=1 -qAt)
  if [[ $("${psql[@]}" -c "select 1 from pg_database where datname = 'mlflow'") != 1 ]]; then
    "${psql[@]}" -c "create database mlflow"
  fi
  echo "postgresql://postgres@127.0.0.1:$port/mlflow"
}

stop() {
  local dir=$1 bin
  bin=$(pg_bin)
  [[ -n $bin && -d $dir/data ]] || return 0
  if as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
  fi
}

status() {
  local bin
  bin=$(pg_bin)
  [[ -n $bin && -d $1/data ]] && as_owner "$bin/pg_ctl" -D "$1/data" status
}

case ${1:-} in
  install) install ;;
  start) start "${2:?usage: $0 start DIR [PORT]}" "${3:-55432}" ;;
  stop) stop "${2:?usage: $0 stop DIR}" ;;
  status) status "${2:?usage: $0 status DIR}" ;;
  *) echo "usage: $0 install | start DIR [PORT] | stop DIR | status DIR" >&2; exit 2 ;;
esac
