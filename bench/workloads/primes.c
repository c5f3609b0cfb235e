/* is_prime by trial division over the first N integers, one decision per call. */
#include "bench_common.h"

static int is_prime(long n) {
    int prime = n >= 2;
    for (long i = 2; i * i <= n; i++) {
        if (n % i == 0) {
            prime = 0;
            break;
        }
    }
    SYSSPAN_DECIDE("bench", "is_prime", n, prime);
    return prime;
}

static long count_primes(long n) {
    long count = 0;
    for (long k = 0; k < n; k++) count += is_prime(k);
    return count;
}

int main(int argc, char **argv) {
    MEASURE(long, "%ld", count_primes(argc > 1 ? atol(argv[1]) : 1000000));
    return 0;
}
