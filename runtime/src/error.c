#include "error.h"

#include <stdarg.h>
#include <stdio.h>

ddq_status ddq_fail(ddq_error *error, ddq_status status, const char *format, ...) {
    if (error) {
        va_list args;
        va_start(args, format);
        vsnprintf(error->message, sizeof error->message, format, args);
        va_end(args);
        error->status = status;
    }
    return status;
}

const char *ddq_status_name(ddq_status status) {
    switch (status) {
    case DDQ_OK: return "ok";
    case DDQ_ERR_IO: return "i/o error";
    case DDQ_ERR_FORMAT: return "malformed bundle";
    case DDQ_ERR_VERSION: return "unsupported bundle version";
    case DDQ_ERR_GRAPH: return "invalid graph";
    case DDQ_ERR_UNSUPPORTED: return "unsupported";
    case DDQ_ERR_ARGUMENT: return "bad argument";
    case DDQ_ERR_NOMEM: return "out of memory";
    case DDQ_ERR_THREAD: return "thread error";
    }
    return "unknown status";
}
