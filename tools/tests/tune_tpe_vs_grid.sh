#!/bin/sh
# Measures deepseek-tune's model-based strategy against the exhaustive grid on tune_objective's
# batcher-like space (3,200 points): the grid's best, then TPE and random search with a budget of
# TRIALS (default 40 and 800 = 25% of the grid) over seeds 1..5, each best as a share of the
# grid's. usage: tune_tpe_vs_grid.sh BUILD_DIR [SCRATCH_DIR]
set -eu
b=$1
tmp=${2:-$(mktemp -d)}
tune=$b/tools/deepseek-tune
obj=$b/tools/tune_objective
space="--param sched_spin_us=0,20,50,100,200,500,1000,5000 --param sched_tick_ms=5:100:5
       --param sched_low_duty_pct=25:100:25 --param precision_skinny_max_m=0:64:16"
search() { # strategy trials seed -> best metric
  rm -f "$tmp/t.jsonl"
  # shellcheck disable=SC2086
  "$tune" $space --metric throughput --repeats 1 --strategy "$1" --trials "$2" --seed "$3" \
    --log "$tmp/t.jsonl" --out "$tmp/t.conf" -- "$obj" 2>/dev/null | awk '{print $3}'
}
grid=$(search grid 1 1)
echo "grid: 3200 evaluations, best throughput $grid"
for trials in ${TRIALS:-40 800}; do
  for strategy in tpe random; do
    for seed in 1 2 3 4 5; do
      best=$(search "$strategy" "$trials" "$seed")
      awk -v s="$strategy" -v t="$trials" -v d="$seed" -v b="$best" -v g="$grid" 'BEGIN {
        printf "%-6s %4d evals (%4.1f%% of grid) seed %d: best %9.2f = %5.1f%% of grid best%s\n",
               s, t, 100 * t / 3200, d, b, 100 * b / g, (b >= 0.9 * g) ? " (within 10%)" : "" }'
    done
  done
done
