/* Filling a ddq_error: one formatted message naming the place that failed. */
#ifndef DDQ_ERROR_H
#define DDQ_ERROR_H

#include "ddq/ddq.h"

#if defined(__GNUC__)
#define DDQ_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define DDQ_PRINTF(f, a)
#endif

/* Sets error->status and error->message (when error is non-NULL) and returns status. */
ddq_status ddq_fail(ddq_error *error, ddq_status status, const char *format, ...) DDQ_PRINTF(3, 4);

#endif
