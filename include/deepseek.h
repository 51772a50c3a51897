/* libdeepseek: umbrella header. Include this one, or the module headers you need. */
#ifndef DEEPSEEK_H
#define DEEPSEEK_H

#include "deepseek/export.h"
#include "deepseek/version.h"
#include "deepseek/status.h"
#include "deepseek/context.h"
#include "deepseek/tensor.h"
#include "deepseek/topology.h"
#include "deepseek/telemetry.h"
#include "deepseek/trace.h"
#include "deepseek/stats.h"
#include "deepseek/precision.h"
#include "deepseek/cache.h"
#include "deepseek/predict.h"
#include "deepseek/sched.h"
#include "deepseek/batch.h"
#include "deepseek/fabric.h"
#include "deepseek/fabric_barrier.h"
#include "deepseek/fabric_mpi.h"

#endif /* DEEPSEEK_H */
