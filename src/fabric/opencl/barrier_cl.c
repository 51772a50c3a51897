/* OpenCL participants of the timestamp barrier: a marker whose completion callback publishes
 * progress (clSetEventCallback, CL_COMPLETE), and the device-side wait, a user event completed
 * by the publish that passes T (or by close) and enqueued as the wait event of a barrier
 * command. Compiled
 * only with OpenCL (barrier_cl_stub.c answers DS_ERR_UNSUPPORTED otherwise). */
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <stdio.h>

#include "barrier_internal.h"

#define MOD "fabric"

struct cl_marker {
  ds_fabric_barrier *b;
  uint32_t participant;
  uint64_t t;
};

static const char *bname(const ds_fabric_barrier *b) { return b->name ? b->name : "barrier"; }

static ds_status cl_error(ds_fabric_barrier *b, const char *call, cl_int err) {
  return ds__error(b->ctx, DS_ERR_DEVICE, MOD, "%s: %s failed with OpenCL error %d", bname(b),
                   call, (int)err);
}

static void CL_CALLBACK marker_done(cl_event ev, cl_int status, void *arg) {
  struct cl_marker *m = arg;
  ds_fabric_barrier *b = m->b;
  if (status == CL_COMPLETE) {
    ds__barrier_advance(b, m->participant, m->t, 1);
  } else {
    char msg[128];
    snprintf(msg, sizeof msg, "participant %u: OpenCL marker for %llu failed with error %d",
             m->participant, (unsigned long long)m->t, (int)status);
    ds__barrier_close(b, DS_ERR_DEVICE, msg);
  }
  clReleaseEvent(ev);
  ds__free(b->ctx, m);
  ds__fetch_sub(&b->device_pending, 1); /* last touch of b */
}

ds_status ds_fabric_barrier_publish_opencl(ds_fabric_barrier *b, uint32_t participant,
                                           void *cl_queue, uint64_t t) {
  if (!b || !cl_queue)
    return ds__error(b ? b->ctx : NULL, DS_ERR_INVALID_ARG, MOD,
                     "barrier publish_opencl: %s is NULL", b ? "cl_queue" : "b");
  ds_status st = ds__barrier_claim(b, participant, t, "publish_opencl");
  if (st != DS_OK) return st;
  struct cl_marker *m = ds__alloc(b->ctx, sizeof *m);
  if (!m) return ds__error(b->ctx, DS_ERR_NO_MEMORY, MOD, "%s: out of memory", bname(b));
  *m = (struct cl_marker){b, participant, t};
  cl_event ev = NULL;
  cl_int err = clEnqueueMarkerWithWaitList((cl_command_queue)cl_queue, 0, NULL, &ev);
  if (err != CL_SUCCESS) {
    ds__free(b->ctx, m);
    return cl_error(b, "clEnqueueMarkerWithWaitList", err);
  }
  ds__fetch_add(&b->device_pending, 1);
  err = clSetEventCallback(ev, CL_COMPLETE, marker_done, m);
  if (err != CL_SUCCESS) {
    ds__fetch_sub(&b->device_pending, 1);
    clReleaseEvent(ev);
    ds__free(b->ctx, m);
    return cl_error(b, "clSetEventCallback", err);
  }
  clFlush((cl_command_queue)cl_queue); /* the marker must reach the device to ever complete */
  return DS_OK;
}

/* Completes the user event once t is passed, and also when the barrier closes: a negative
 * status would terminate the commands behind it, which leaves the queue and context
 * implementation-defined (and crashes PoCL 5 in pocl_update_event_failed), so a closed barrier
 * releases the queue and the host learns of the closure from its own calls. */
static void release_user_event(void *arg, uint64_t t, int ok) {
  (void)t, (void)ok;
  cl_event ev = arg;
  clSetUserEventStatus(ev, CL_COMPLETE);
  clReleaseEvent(ev);
}

ds_status ds_fabric_barrier_wait_opencl(ds_fabric_barrier *b, void *cl_queue, uint64_t t,
                                        void **out_event) {
  if (out_event) *out_event = NULL;
  if (!b || !cl_queue)
    return ds__error(b ? b->ctx : NULL, DS_ERR_INVALID_ARG, MOD,
                     "barrier wait_opencl: %s is NULL", b ? "cl_queue" : "b");
  int closed = ds__load(&b->closed);
  if (closed) return ds__error(b->ctx, (ds_status)closed, MOD, "%s wait_opencl: closed", bname(b));
  if (ds__barrier_passed(b, t)) return DS_OK;
  cl_context clctx = NULL;
  cl_int err = clGetCommandQueueInfo((cl_command_queue)cl_queue, CL_QUEUE_CONTEXT,
                                     sizeof clctx, &clctx, NULL);
  if (err != CL_SUCCESS) return cl_error(b, "clGetCommandQueueInfo", err);
  cl_event ev = clCreateUserEvent(clctx, &err);
  if (err != CL_SUCCESS) return cl_error(b, "clCreateUserEvent", err);
  err = clEnqueueBarrierWithWaitList((cl_command_queue)cl_queue, 1, &ev, NULL);
  if (err != CL_SUCCESS) {
    clSetUserEventStatus(ev, CL_COMPLETE);
    clReleaseEvent(ev);
    return cl_error(b, "clEnqueueBarrierWithWaitList", err);
  }
  if (out_event) {
    clRetainEvent(ev);
    *out_event = ev;
  }
  /* The notification owns one reference and completes the event exactly once. */
  ds_status st = ds__barrier_on_passed(b, t, release_user_event, ev);
  if (st != DS_OK) release_user_event(ev, t, 0);
  return st;
}
