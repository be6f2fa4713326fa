/* Kernel-set selection: CPU features read once, a set chosen per session. */
#ifndef DDQ_DISPATCH_H
#define DDQ_DISPATCH_H

#include "ddq/ddq.h"
#include "kernels/kernels.h"

/* Whether the CPU has `feature`, one of the names ddq_cpu_features() lists. */
int ddq_cpu_has(const char *feature);

/* `requested`: a set's name, or NULL for $DDQ_KERNELS, or failing that the best available set. */
ddq_status ddq_select_kernels(const char *requested, const ddq_kernel_set **out, ddq_error *error);

#endif
