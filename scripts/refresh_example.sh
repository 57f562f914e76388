#!/usr/bin/env bash
# Run the README's quick start in a fresh folder and store, then write its report into the docs
# (docs/report_example/, docs/figures/grad_by_layer.png and the results paragraph of docs/results.md)
# with scripts/refresh_example.py. Takes about 6 minutes on a quiet 2-core machine.
#   bash scripts/refresh_example.sh            # WORK=<folder> keeps the sweep there (default: a temp folder)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="${WORK:-$(mktemp -d)}"
args=(-m experiment=quick_start activation=sigmoid,tanh,relu depth=2,4,8)
load="$(cut -d' ' -f1 /proc/loadavg)"
start="$(date +%s.%N)"
(cd "$work" && MLFLOW_TRACKING_URI="sqlite:///$work/mlflow.db" python -m actstudy.train "${args[@]}" \
    hydra.sweep.dir="$work/sweep") 2>&1 | tee "$work/terminal.txt"
wall="$(python -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 1))" "$start" "$(date +%s.%N)")"
python "$root/scripts/refresh_example.py" --report "$work/sweep/report" --wall-s "$wall" --load "$load" \
    --command "python -m actstudy.train ${args[*]}"
echo "refresh_example: docs updated from $work/sweep/report (the sweep took $wall s)"
