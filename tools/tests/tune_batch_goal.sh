#!/bin/sh
# Measures deepseek-tune's goal on the batcher's search space with the built-in workloads (the
# real batcher, in-process; tools/tune_workload.c): the exhaustive grid over SPACE (350 feasible
# points), then TPE and random search with 87 evaluations (25% of the grid) for seeds
# 1..SEEDS, for three objectives:
#   A: batch_peak (closed loop), maximise throughput
#   B: batch_peak, maximise throughput subject to p99_us <= BUDGET_US (default 10000)
#   C: batch (open loop, 6000 requests/s), minimise p99_us
# The metrics are measurements on a shared machine, so a search's best value is partly luck,
# and the grid, with four times the draws, gets the luckiest. So each search's best setting and,
# just before it, the grid's best setting are measured again, CONFIRM times each (median), and
# the ratio of those two re-measurements decides "within 10%"; the ratio of the searches' own
# bests is printed too.
# usage: tune_batch_goal.sh BUILD_DIR [SCRATCH_DIR]   (TUNE=path overrides the binary;
# SEED_FROM=K starts the seeds at K; OBJECTIVES="A B C" and STRATEGIES="tpe random" pick)
set -eu
b=$1
tmp=${2:-$(mktemp -d)}
tune=${TUNE:-$b/tools/deepseek-tune}
seeds=${SEEDS:-5}
first=${SEED_FROM:-1}
confirm=${CONFIRM:-7}
space="--param batch_max_size=1,2,4,8,16,32,64 --param batch_max_delay_us=0,200,500,1000,2000
       --param batch_max_inflight=1,2,4,8 --param sched_workers=1,2,4,8
       --constraint batch_max_inflight<=sched_workers"
budget=87 # 25% of the 350 feasible points, rounded down

search() { # workload objective-args strategy trials seed -> "best-value best-key"
  rm -f "$tmp/s.jsonl"
  # shellcheck disable=SC2086
  "$tune" $space $2 --repeats 1 --strategy "$3" --trials "$4" --seed "$5" \
    --log "$tmp/s.jsonl" --out "$tmp/s.conf" --workload "$1" 2>/dev/null |
    awk '{print $3, $5}'
}

remeasure() { # workload metric key -> median of $confirm runs of the metric at that setting
  rm -f "$tmp/c.jsonl"
  params=$(echo "$3" | tr ',' '\n' | sed 's/^/--param /' | tr '\n' ' ')
  # shellcheck disable=SC2086
  "$tune" $params --metric "$2" --repeats "$confirm" --log "$tmp/c.jsonl" \
    --out "$tmp/c.conf" --workload "$1" 2>/dev/null | awk '{print $3}'
}

# found/grid for a metric to maximise, grid/found for one to minimise: 1 = as good
ratio() { awk -v f="$1" -v g="$2" -v lo="$3" 'BEGIN { printf "%.3f", lo ? g / f : f / g }'; }

goal() { # name workload metric lower(0/1) objective-args
  name=$1 wl=$2 metric=$3 lower=$4 args=$5
  th=0.9 # within 10%: found >= 0.9 x grid when maximising, found <= 1.1 x grid when minimising
  [ "$lower" = 1 ] && th=$(awk 'BEGIN { print 1 / 1.1 }')
  t0=$(date +%s)
  set -- $(search "$wl" "$args" grid 1 1) 0 none
  grid=$1 gkey=$2
  gconf=$(remeasure "$wl" "$metric" "$gkey")
  echo "$name grid: 350 evaluations ($(($(date +%s) - t0)) s), best $grid at $gkey;" \
       "re-measured $gconf"
  for strategy in ${STRATEGIES:-tpe random}; do
    within=0 within_raw=0
    for seed in $(seq "$first" $((first + seeds - 1))); do
      set -- $(search "$wl" "$args" $strategy $budget "$seed") 0 none
      best=$1 key=$2
      # the grid's best again, just before: the two re-measurements see the same load
      gconf=$(remeasure "$wl" "$metric" "$gkey")
      conf=$(remeasure "$wl" "$metric" "$key")
      raw=$(ratio "$best" "$grid" "$lower")
      r=$(ratio "$conf" "$gconf" "$lower")
      echo "$name $strategy seed $seed: best $best at $key ($raw of the grid's best);" \
           "re-measured $conf vs the grid's $gconf: $r"
      within=$((within + $(awk -v r="$r" -v t="$th" 'BEGIN { print (r >= t) }')))
      within_raw=$((within_raw + $(awk -v r="$raw" -v t="$th" 'BEGIN { print (r >= t) }')))
    done
    echo "$name $strategy: $within of $seeds seeds within 10% of the grid's best" \
         "re-measured ($within_raw of $seeds on the searches' own bests)"
  done
}

echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
for o in ${OBJECTIVES:-A B C}; do
  case $o in
    A) goal A batch_peak throughput 0 "--metric throughput" ;;
    B) goal B batch_peak throughput 0 "--metric throughput --limit p99_us<=${BUDGET_US:-10000}" ;;
    C) goal C batch p99_us 1 "--metric p99_us --minimize" ;;
  esac
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
