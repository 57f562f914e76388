#!/usr/bin/env bash
# The GPU check (scripts/gpu_check.py): one table of what actstudy does on one GPU. Run it on a machine
# with a GPU after the README's install; `--accelerator cpu --quick` checks the script itself on a CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python scripts/gpu_check.py "$@"
