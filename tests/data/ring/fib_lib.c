/* fib with one decision per call, built as a shared library (-fPIC) and loaded by
 * dlopen() from fib_host.c: the header's thread-locals live in a dlopen()ed object. */
#include "sysspan_decisions.h"

__attribute__((noinline)) long fib(int n) {
    SYSSPAN_DECIDE("lib", "fib", n, n < 2);
    return n < 2 ? n : fib(n - 1) + fib(n - 2);
}
