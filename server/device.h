/* device.h: the compute backend that dashboard jobs and the engine commands run on, chosen by
 * SAED_DEVICE (auto, cpu, cuda, cuda:N) with SAED_GPU_PRECISION (fp32, tf32, bf16). Job
 * workers read both from the config table; the commands that do not load it (forward, encode,
 * dashboards) take --device / --gpu-precision flags that default to the same variables. */
#ifndef SAED_DEVICE_H
#define SAED_DEVICE_H

#include <stddef.h>

#include "gpu/backend.h"

/* Opens the backend for spec and precision; slot spreads "auto" and "cuda" over the GPUs (a
 * worker's index, 0 otherwise). "auto" on a machine without a usable GPU logs why and returns
 * the CPU backend. NULL with err when an explicit cuda/cuda:N cannot be opened or an argument
 * is invalid: a caller never silently gets another device than the one named. */
saed_backend *device_open(const char *spec, const char *precision, int slot, char *err, size_t errlen);

/* flag when not NULL, else the environment variable, else the config table's default. */
const char *device_spec_arg(const char *flag);
const char *device_precision_arg(const char *flag);

#endif
