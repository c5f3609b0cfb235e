/* Test writer for the decision ring, through include/sysspan_decisions.h only.
 *   ring_writer stress NPROC NTHREADS N   NPROC processes x NTHREADS threads x N decisions
 *   ring_writer threads NTHREADS N        one process, threads that exit before it does
 *   ring_writer fib N                     one decision per call of a recursive fib(N)
 *   ring_writer paced N NS                N decisions, one every NS ns of busy work;
 *                                         prints the ns from the first to the last
 *   ring_writer killed                    reserve a slot, then SIGKILL itself before commit
 *   ring_writer sites NTHREADS N          threads sharing two literal call sites, each
 *                                         N decisions over >= N/100 ms; prints the
 *                                         CLOCK_REALTIME ns before the threads and after
 * Decision k of thread t of process p: name "p<p>t<t>", input k, result check(p, t, k). */
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>

#include "sysspan_decisions.h"

static long long check(int p, int t, long long k) { return ((long long)(p * 64 + t) << 32) ^ (k * 2654435761LL); }

struct job { int p, t; long long n; };

static void *run(void *arg) {
    struct job *j = arg;
    char name[32];
    snprintf(name, sizeof name, "p%dt%d", j->p, j->t);
    for (long long k = 0; k < j->n; k++) SYSSPAN_DECIDE("stress", name, k, check(j->p, j->t, k));
    return NULL;
}

static void threads(int p, int nt, long long n) {
    pthread_t tids[64];
    struct job jobs[64];
    for (int t = 0; t < nt && t < 64; t++) {
        jobs[t] = (struct job){p, t, n};
        pthread_create(&tids[t], NULL, run, &jobs[t]);
    }
    for (int t = 0; t < nt && t < 64; t++) pthread_join(tids[t], NULL);
}

/* Even inputs at one call site, odd at another; the result is the thread's number. A
 * millisecond's pause every 100 decisions makes each thread's records span many of the
 * header's clock anchors. */
static void *two_sites(void *arg) {
    struct job *j = arg;
    for (long long k = 0; k < j->n; k++) {
        if (k & 1)
            SYSSPAN_DECIDE("site", "odd", k, j->t);
        else
            SYSSPAN_DECIDE("site", "even", k, j->t);
        if (k % 100 == 99) nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    return NULL;
}

static long long fib(int n) {
    SYSSPAN_DECIDE("bench", "fib", n, n < 2);
    return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

int main(int argc, char **argv) {
    if (argc >= 5 && !strcmp(argv[1], "stress")) {
        int np = atoi(argv[2]), nt = atoi(argv[3]);
        long long n = atoll(argv[4]);
        for (int p = 0; p < np; p++) {
            if (fork() == 0) {
                threads(p, nt, n);
                exit(0);
            }
        }
        int status, failed = 0;
        while (wait(&status) > 0) failed |= !WIFEXITED(status) || WEXITSTATUS(status);
        return failed;
    }
    if (argc >= 4 && !strcmp(argv[1], "threads")) {
        threads(0, atoi(argv[2]), atoll(argv[3]));
        return 0;
    }
    if (argc >= 4 && !strcmp(argv[1], "sites")) {
        pthread_t tids[64];
        struct job jobs[64];
        int nt = atoi(argv[2]);
        uint64_t before = sysspan__now_ns();
        for (int t = 0; t < nt && t < 64; t++) {
            jobs[t] = (struct job){0, t, atoll(argv[3])};
            pthread_create(&tids[t], NULL, two_sites, &jobs[t]);
        }
        for (int t = 0; t < nt && t < 64; t++) pthread_join(tids[t], NULL);
        printf("%llu %llu\n", (unsigned long long)before, (unsigned long long)sysspan__now_ns());
        return 0;
    }
    if (argc >= 4 && !strcmp(argv[1], "paced")) {
        long long n = atoll(argv[2]), every = atoll(argv[3]);
        uint64_t first = sysspan__now_ns(), next = first;
        for (long long k = 0; k < n; k++) {
            SYSSPAN_DECIDE("paced", "step", k, 0);
            for (next += (uint64_t)every; sysspan__now_ns() < next;) {
            }
        }
        printf("%llu\n", (unsigned long long)(sysspan__now_ns() - first));
        return 0;
    }
    if (argc >= 3 && !strcmp(argv[1], "fib")) {
        printf("%lld\n", fib(atoi(argv[2])));
        return 0;
    }
    if (argc >= 2 && !strcmp(argv[1], "killed")) {
        void *base = sysspan_ring_map(getenv(SYSSPAN_RING_ENV));
        uint64_t pos;
        if (!base || !sysspan_ring_reserve(base, &pos, (uint32_t)getpid())) return 2;
        printf("%llu\n", (unsigned long long)pos);
        fflush(stdout);
        raise(SIGKILL);
    }
    fprintf(stderr, "usage: ring_writer stress|threads|sites|paced|fib|killed ...\n");
    return 2;
}
