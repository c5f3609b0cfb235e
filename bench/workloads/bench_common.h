/* Shared by the C workloads: a monotonic clock, and SYSSPAN_DECIDE compiled away when
 * the uninstrumented build defines SYSSPAN_OFF. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#ifdef SYSSPAN_OFF
#define SYSSPAN_DECIDE(category, name, input, result) ((void)0)
#else
#include "sysspan_decisions.h"
#endif

static double clock_s(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The hot part's wall and CPU seconds (CPU: this thread only, so a reader competing for
 * the machine shows in wall time, not here), then its result. */
#define MEASURE(result_type, fmt, expr)                                               \
    do {                                                                              \
        double w0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);  \
        result_type value = (expr);                                                   \
        double c1 = clock_s(CLOCK_THREAD_CPUTIME_ID), w1 = clock_s(CLOCK_MONOTONIC);  \
        printf("%.6f %.6f " fmt "\n", w1 - w0, c1 - c0, value);                     \
    } while (0)
