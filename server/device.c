/* device.c: see device.h. */
#include "server/device.h"

#include <stdio.h>
#include <stdlib.h>

#include "server/log.h"

saed_backend *device_open(const char *spec, const char *precision, int slot, char *err, size_t errlen)
{
    backend_precision prec;
    if (backend_precision_parse(precision, &prec)) {
        snprintf(err, errlen, "GPU precision '%s': expected fp32, tf32 or bf16", precision ? precision : "");
        return NULL;
    }
    char why[512];
    saed_backend *b = backend_open_slot(spec, slot, why, sizeof why);
    if (!b) {
        snprintf(err, errlen, "compute device %s: %s", spec, why[0] ? why : "cannot be opened");
        return NULL;
    }
    b->precision = prec;
    if (why[0]) log_info("SAED_DEVICE=%s: running on the CPU: %s", spec, why);
    if (b->host_memory && prec != BACKEND_FP32)
        log_info("SAED_GPU_PRECISION=%s has no effect on the CPU (always fp32)", backend_precision_name(prec));
    log_debug("compute device: %s (%s, %s GEMMs)", b->device, b->name, backend_precision_name(b->host_memory ? BACKEND_FP32 : prec));
    return b;
}

const char *device_spec_arg(const char *flag)
{
    const char *e = getenv("SAED_DEVICE");
    return flag ? flag : e && *e ? e : "auto";
}

const char *device_precision_arg(const char *flag)
{
    const char *e = getenv("SAED_GPU_PRECISION");
    return flag ? flag : e && *e ? e : "fp32";
}
