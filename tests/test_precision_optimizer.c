/* Tests of the optimisers: SGD with momentum and AdamW against fp64 references of PyTorch's
 * update rules and, when /usr/bin/python3 can import torch, against torch.optim itself on the
 * same numbers; working copies are the rounded masters; memory accounting by role. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "precision_internal.h"
#include "test_util.h"

#define NP 6
#define STEPS 5

static float init_v(int i) { return 0.5f - 0.25f * (float)i; }
static float grad_v(int s, int i) { return (float)sin(1.0 + s * 0.7 + i * 1.3); }

/* fp64 reference of torch.optim.SGD(momentum, weight_decay) / AdamW. */
static void reference(int adam, double *p) {
  double m[NP] = {0}, v[NP] = {0};
  for (int i = 0; i < NP; i++) p[i] = init_v(i);
  for (int s = 0; s < STEPS; s++)
    for (int i = 0; i < NP; i++) {
      double g = grad_v(s, i);
      if (!adam) {
        double d = g + 0.01 * p[i];
        m[i] = s == 0 ? d : 0.9 * m[i] + d;
        p[i] -= 0.1 * m[i];
      } else {
        p[i] *= 1 - 0.01 * 0.1;
        m[i] = 0.9 * m[i] + 0.1 * g, v[i] = 0.999 * v[i] + 0.001 * g * g;
        double mh = m[i] / (1 - pow(0.9, s + 1)), vh = v[i] / (1 - pow(0.999, s + 1));
        p[i] -= 0.01 * mh / (sqrt(vh) + 1e-8);
      }
    }
}

/* The same run in torch.optim through /usr/bin/python3; 0 when torch is not importable. */
static int torch_run(int adam, double *p) {
  if (access("/usr/bin/python3", X_OK) != 0) return 0;
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "/usr/bin/python3 -c \"\nimport math\ntry:\n import torch\nexcept Exception:\n raise SystemExit(3)\n"
           "p=torch.nn.Parameter(torch.tensor([0.5-0.25*i for i in range(%d)],dtype=torch.float32))\n"
           "o=%s\n"
           "for s in range(%d):\n"
           " p.grad=torch.tensor([math.sin(1.0+s*0.7+i*1.3) for i in range(%d)],dtype=torch.float32)\n"
           " o.step()\n"
           "print(' '.join('%%.9g'%%x for x in p.detach().tolist()))\n\" 2>/dev/null",
           NP,
           adam ? "torch.optim.AdamW([p],lr=0.01,betas=(0.9,0.999),eps=1e-8,weight_decay=0.1)"
                : "torch.optim.SGD([p],lr=0.1,momentum=0.9,weight_decay=0.01)",
           STEPS, NP);
  FILE *f = popen(cmd, "r");
  if (!f) return 0;
  int got = 0;
  for (int i = 0; i < NP; i++) got += fscanf(f, "%lf", &p[i]) == 1;
  int rc = pclose(f);
  return got == NP && rc == 0;
}

static void run(int adam, ds_dtype wdt, int with_torch) {
  ds_context *ctx = ds_test_context(NULL, 0);
  ds_optimizer_options oo = DS_OPTIMIZER_OPTIONS_INIT;
  oo.kind = adam ? DS_OPT_ADAMW : DS_OPT_SGD;
  oo.lr = adam ? 0.01f : 0.1f;
  oo.weight_decay = adam ? 0.1f : 0.01f;
  ds_optimizer *o = NULL;
  assert_int_equal(ds_optimizer_create(&o, ctx, &oo), DS_OK);
  float init[NP], g[NP];
  for (int i = 0; i < NP; i++) init[i] = init_v(i);
  assert_int_equal(ds_optimizer_add_param(o, "fc1.weight", init, NP, wdt), DS_OK);
  assert_int_equal(ds_optimizer_add_param(o, "fc1.weight", init, NP, wdt), DS_ERR_INVALID_ARG);
  for (int s = 0; s < STEPS; s++) {
    for (int i = 0; i < NP; i++) g[i] = grad_v(s, i);
    assert_int_equal(ds_optimizer_step(o, "fc1.weight", g), DS_OK);
  }
  float *master = NULL;
  void *work = NULL;
  ds_dtype wd;
  assert_int_equal(ds_optimizer_master(o, "fc1.weight", &master), DS_OK);
  assert_int_equal(ds_optimizer_working(o, "fc1.weight", &work, &wd), DS_OK);
  assert_int_equal(wd, wdt);
  double ref[NP], tr[NP];
  reference(adam, ref);
  for (int i = 0; i < NP; i++) {
    assert_true(fabs(master[i] - ref[i]) <= 2e-6 * (1 + fabs(ref[i])));
    if (wdt == DS_DTYPE_F16) assert_int_equal(((uint16_t *)work)[i], ds__f32_to_f16(master[i]));
    if (wdt == DS_DTYPE_BF16) assert_int_equal(((uint16_t *)work)[i], ds__f32_to_bf16(master[i]));
    if (wdt == DS_DTYPE_F32) assert_ptr_equal(work, master);
  }
  if (!with_torch) {
    /* the masters do not depend on the working dtype: torch is asked once per kind */
  } else if (torch_run(adam, tr)) {
    for (int i = 0; i < NP; i++) assert_true(fabs(master[i] - tr[i]) <= 2e-6 * (1 + fabs(tr[i])));
    printf("precision: %s matches torch.optim on %d steps\n", adam ? "AdamW" : "SGD", STEPS);
  } else {
    printf("precision: torch not importable from /usr/bin/python3; fp64 reference only\n");
  }
  assert_int_equal(ds_optimizer_step(o, "nope", g), DS_ERR_NOT_FOUND);
  ds_optimizer_destroy(o);
  ds_context_destroy(ctx);
}

static void test_sgd(void **state) {
  (void)state;
  run(0, DS_DTYPE_F32, 1);
  run(0, DS_DTYPE_F16, 0);
}

static void test_adamw(void **state) {
  (void)state;
  run(1, DS_DTYPE_BF16, 1);
  run(1, DS_DTYPE_F32, 0);
}

static void test_memory_accounting(void **state) {
  (void)state;
  ds_context *ctx = ds_test_context(NULL, 0);
  ds_optimizer_options oo = DS_OPTIMIZER_OPTIONS_INIT;
  oo.kind = DS_OPT_ADAMW;
  ds_optimizer *o = NULL;
  assert_int_equal(ds_optimizer_create(&o, ctx, &oo), DS_OK);
  static float w[1000];
  assert_int_equal(ds_optimizer_add_param(o, "a", w, 1000, DS_DTYPE_BF16), DS_OK);
  assert_int_equal(ds_optimizer_add_param(o, "b", w, 500, DS_DTYPE_F32), DS_OK);
  ds_optimizer_memory m = {.struct_size = sizeof(ds_optimizer_memory) - 8}; /* an older size */
  assert_int_equal(ds_optimizer_memory_get(o, &m), DS_ERR_ABI);
  assert_int_equal(m.master_bytes, 0); /* nothing written */
  m.struct_size = sizeof m;
  assert_int_equal(ds_optimizer_memory_get(o, &m), DS_OK);
  assert_int_equal(m.struct_size, sizeof m);
  assert_int_equal(m.master_bytes, 6000);
  assert_int_equal(m.state_bytes, 12000);
  assert_int_equal(m.working_bytes, 2000);
  assert_int_equal(m.total_bytes, 20000);
  assert_int_equal(m.fp32_equivalent, 18000);
  assert_int_equal(m.f32_bytes, 18000); /* masters and state */
  assert_int_equal(m.bf16_bytes, 2000); /* the working copy of a */
  assert_int_equal(m.f16_bytes + m.low16_bytes, 0);
  assert_true(fabs(m.saved_fraction - (1.0 - 20000.0 / 18000.0)) < 1e-12);
  ds_optimizer_destroy(o);
  oo.lr = 0;
  assert_int_equal(ds_optimizer_create(&o, ctx, &oo), DS_ERR_INVALID_ARG);
  oo.struct_size = 3;
  assert_int_equal(ds_optimizer_create(&o, ctx, &oo), DS_ERR_ABI);
  ds_context_destroy(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sgd),
      cmocka_unit_test(test_adamw),
      cmocka_unit_test(test_memory_accounting),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
