#!/usr/bin/env bash
# Runs a command and samples its resident memory (VmRSS from /proc/PID/status, Linux) every
# INTERVAL seconds into a CSV file, then prints the first sample, the one at 10 % of the run, the peak and the last.
# Used for the long-run memory figure in docs/performance.md:
#
#   scripts/rss-watch.sh runs/long20k-rss.csv 5 -- \
#     target/release/gradscope train --task adding --seq-len 50 --model lstm --hidden 32 \
#       --steps 20000 --quiet --out runs/long20k
#
# The command's own stdout/stderr pass through; the exit status is the command's.
set -euo pipefail
if [ $# -lt 4 ] || [ "$3" != "--" ]; then
  echo "usage: $0 OUT.csv INTERVAL_SECONDS -- COMMAND [ARGS...]" >&2
  exit 2
fi
csv=$1
interval=$2
shift 3
mkdir -p "$(dirname "$csv")"
echo "seconds,vmrss_kb" > "$csv"
"$@" &
pid=$!
start=$(date +%s)
while kill -0 "$pid" 2>/dev/null; do
  rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
  [ -n "$rss" ] && echo "$(( $(date +%s) - start )),$rss" >> "$csv"
  sleep "$interval"
done
set +e
wait "$pid"
status=$?
set -e
awk -F, 'BEGIN { n = 0 } NR > 1 { t[n] = $1; r[n] = $2; if ($2 > peak) peak = $2; n++ }
  END { if (n) { w = int(n / 10); printf "VmRSS over %d samples (%d s): first %.1f MB, at %d s %.1f MB, peak %.1f MB, last %.1f MB\n",
        n, t[n - 1], r[0] / 1024, t[w], r[w] / 1024, peak / 1024, r[n - 1] / 1024 } }' "$csv" >&2
exit "$status"
