#!/usr/bin/env bash
# The modern recurrences' results table of docs/results.md: adding T = 200 and 1000 and copy
# T = 200, each family at its own learning rate (the min cells at 1e-2, the LRU at 3e-3 with two
# blocks (one block has no nonlinearity before its recurrence to form the marker-value product),
# Mamba at 3e-3 with one block, the LSTM at its usual 1e-3 with forget-gate bias 1), Adam, clip 1,
# hidden 128, batch 64, stopping when solved or after BUDGET seconds (default 300). MODELS picks
# the families (default "mingru minlstm lru mamba lstm"; rnn, gru and gpt run at 1e-3), JOBS the
# tasks (default "adding:200 adding:1000 copy:200"). Writes runs/modern/<task>-t<T>-<model>/ and
# prints one line per run.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/gradscope
cargo build --release --quiet
budget=${BUDGET:-300}
out=runs/modern
for job in ${JOBS:-adding:200 adding:1000 copy:200}; do
  set -- ${job/:/ }
  for model in ${MODELS:-mingru minlstm lru mamba lstm}; do
    case $model in
      lstm) extra=(--lr 1e-3 --forget-bias 1) ;;
      lru) extra=(--lr 3e-3 --layers 2) ;;
      mamba) extra=(--lr 3e-3) ;;
      mingru | minlstm) extra=(--lr 1e-2) ;;
      *) extra=(--lr 1e-3) ;;
    esac
    dir=$out/$1-t$2-$model
    rm -rf "$dir"
    $bin train --task "$1" --seq-len "$2" --model "$model" --hidden 128 --batch 64 --steps 20000 \
      --eval-every 100 --clip 1 --stop-when-solved --max-seconds "$budget" --seed 0 --quiet \
      "${extra[@]}" --out "$dir" > /dev/null
    python3 - "$dir" <<'PY'
import json, sys
s = json.load(open(sys.argv[1] + "/summary.json"))
metric = s["eval_mse"] if s["eval_mse"] is not None else s["eval_accuracy"]
print(f"{s['label']:32} solved={s['solved']!s:5} steps_to_solve={s['steps_to_solve']} "
      f"steps={s['steps']} metric={metric:.4f} baseline={s['baseline']:.4f} wall={s['wall_seconds']:.0f}s")
PY
  done
done
