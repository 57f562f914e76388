#!/usr/bin/env bash
# Debian packages for the system tests (run as root): headless Chromium with fonts for the MLflow UI
# check, SLURM + munge + MariaDB for the local single-node cluster (scripts/local_slurm.sh), and
# PostgreSQL for the tracking server's database (scripts/local_postgres.sh).
# Installs only what is missing, so a second run takes a second.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
browser="chromium fonts-dejavu-core fonts-liberation"
if ! dpkg -s $browser >/dev/null 2>&1; then
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $browser
fi
bash "$here/local_slurm.sh" install
bash "$here/local_postgres.sh" install
