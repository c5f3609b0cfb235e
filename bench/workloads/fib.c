/* fib(N) recursively, one decision per call; prints the hot part's seconds. */
#include "bench_common.h"

/* noinline: one real call per fib in both builds (gcc would otherwise unroll the recursion
 * several levels deep in the uninstrumented build only, comparing different programs). */
__attribute__((noinline)) static long fib(int n) {
    SYSSPAN_DECIDE("bench", "fib", n, n < 2);
    return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 35;
    MEASURE(long, "%ld", fib(n));
    return 0;
}
