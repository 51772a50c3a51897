/* Fuzz target: ds_tensor_from_dlpack on DLPack tensors whose every field comes from the input
 * (a producer in another library may hand us anything). */
#include <dlpack/dlpack.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int64_t shape[12], strides[12];
  DLManagedTensor m;
  memset(&m, 0, sizeof m);
  if (size < 8 + sizeof shape + sizeof strides) return 0;
  m.dl_tensor.ndim = (int8_t)data[0] % 13; /* never more than the arrays hold */
  m.dl_tensor.dtype.code = data[1];
  m.dl_tensor.dtype.bits = data[2];
  m.dl_tensor.dtype.lanes = (uint16_t)(data[3] | data[4] << 8);
  m.dl_tensor.device.device_type = (DLDeviceType)(data[5] % 16);
  m.dl_tensor.device.device_id = data[6];
  memcpy(shape, data + 8, sizeof shape);
  memcpy(strides, data + 8 + sizeof shape, sizeof strides);
  m.dl_tensor.shape = shape;
  m.dl_tensor.strides = (data[7] & 1) ? strides : NULL;
  m.dl_tensor.byte_offset = data[7] >> 1;
  static char storage[64];
  m.dl_tensor.data = storage;
  ds_tensor t;
  if (ds_tensor_from_dlpack(&t, NULL, &m) == DS_OK) {
    if (t.ndim < 0 || t.ndim > DS_TENSOR_MAX_DIMS) __builtin_trap();
    (void)ds_tensor_numel(&t);
    (void)ds_tensor_nbytes(&t);
    (void)ds_tensor_is_contiguous(&t);
  }
  return 0;
}
