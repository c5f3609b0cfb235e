/* sum_array over ARRAYS arrays of 1,000 integers, one decision per call. */
#include "bench_common.h"

static long sum_array(const int *values, int len) {
    long total = 0;
    for (int i = 0; i < len; i++) total += values[i];
    SYSSPAN_DECIDE("bench", "sum_array", len, total);
    return total;
}

static long sum_all(const int *data, long arrays) {
    long grand = 0;
    for (long k = 0; k < arrays; k++) grand += sum_array(data + k % 1000, 1000);
    return grand;
}

int main(int argc, char **argv) {
    int *data = malloc(sizeof(int) * 2000);
    for (int i = 0; i < 2000; i++) data[i] = i * 7 % 1009;
    MEASURE(long, "%ld", sum_all(data, argc > 1 ? atol(argv[1]) : 100000));
    free(data);
    return 0;
}
