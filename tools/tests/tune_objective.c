/* tune_objective: a cheap, deterministic stand-in for the batcher benchmark, for deepseek-tune's
 * model-based strategy test and measurement (bench_batch_serving takes seconds per run and is
 * noisy; a search needs hundreds of runs). It reads four real library tunables from the
 * environment (DS_SCHED_SPIN_US, DS_SCHED_TICK_MS, DS_SCHED_LOW_DUTY_PCT,
 * DS_PRECISION_SKINNY_MAX_M; the library's defaults when unset) and prints
 * "throughput T" (requests/s) from a synthetic model of a batching server:
 *   - spinning before sleeping cuts the worker wake-up latency but burns CPU;
 *   - a longer batching tick fills batches better until requests miss their deadline, and the
 *     deadline slack grows with faster wake-ups (so tick and spin interact);
 *   - LOW-priority work at a high duty cycle steals cycles, at a low one starves the
 *     pre-processing it does;
 *   - the skinny-GEMM threshold is best near the typical batch size (24).
 * Smooth with one optimum, non-separable, no noise: the search space of test_tools.py. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static double env_num(const char *name, double dflt) {
  const char *v = getenv(name);
  return v && *v ? atof(v) : dflt;
}

int main(void) {
  double spin = env_num("DS_SCHED_SPIN_US", 50), tick = env_num("DS_SCHED_TICK_MS", 50);
  double duty = env_num("DS_SCHED_LOW_DUTY_PCT", 100);
  double skinny = env_num("DS_PRECISION_SKINNY_MAX_M", 32);
  double wake_us = 60 / (1 + spin / 50), waste = spin / 4000;
  double f_spin = 1 / (1 + wake_us / 100) * (1 - (waste < 0.5 ? waste : 0.5));
  double fill = 1 - exp(-tick / 15), slack = 40 + 30 / (1 + wake_us / 10);
  double miss = tick > slack ? (tick - slack) / 80 : 0;
  double f_tick = (0.4 + 0.6 * fill) * (1 - (miss < 0.9 ? miss : 0.9));
  double f_duty = 1 - 0.15 * fabs(duty - 50) / 50;
  double f_skinny = 1 - 0.5 * ((skinny - 24) / 64) * ((skinny - 24) / 64);
  printf("throughput %.6f\n", 10000 * f_spin * f_tick * f_duty * f_skinny);
  return 0;
}
