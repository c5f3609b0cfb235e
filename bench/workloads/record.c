/* The C header's record path alone: every call of one literal call site kept and written,
 * into a private ring this program creates (layout: docs/decision-ring.md) and hands back
 * between batches the way sysspan's reader would, so that neither a reader on another CPU
 * nor a full ring is in the figure. Prints the best batch's nanoseconds per record, then
 * one clock_gettime(CLOCK_REALTIME)'s, both thread CPU time. */
#include <stdio.h>

#include "sysspan_decisions.h"

#define SLOTS 8192u
#define BATCHES 200

static double thread_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static char *make_ring(const char *path, size_t size) {
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || ftruncate(fd, (off_t)size) != 0) return NULL;
    char *b = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (b == MAP_FAILED) return NULL;
    double keep_all = 1.0;
    memcpy(b, SYSSPAN_RING_MAGIC, 8);
    *SYSSPAN__U32(b, SYSSPAN_H_VERSION) = SYSSPAN_RING_VERSION;
    *SYSSPAN__U32(b, SYSSPAN_H_HEADER_SIZE) = 4096;
    *SYSSPAN__U32(b, SYSSPAN_H_SLOT_SIZE) = 512;
    *SYSSPAN__U32(b, SYSSPAN_H_SLOT_COUNT) = SLOTS;
    memcpy(b + SYSSPAN_H_SAMPLE, &keep_all, 8); /* rate stays 0: no limit */
    return b;
}

/* Hand every slot back for the positions from `head` on, as the reader does (free for
 * position p is the state p, stored minus the slot's index). */
static void free_all(char *ring) {
    uint64_t head = *SYSSPAN__U64(ring, SYSSPAN_H_HEAD);
    for (uint64_t p = head; p < head + SLOTS; p++)
        *SYSSPAN__U64(ring + 4096 + (size_t)(p % SLOTS) * 512, SYSSPAN_S_SEQ) = p - p % SLOTS;
}

int main(void) {
    char path[64];
    snprintf(path, sizeof path, "/dev/shm/sysspan-bench-record-%d", (int)getpid());
    size_t size = 4096 + (size_t)SLOTS * 512;
    char *ring = make_ring(path, size);
    if (!ring) {
        perror(path);
        return 1;
    }
    free_all(ring);
    setenv(SYSSPAN_RING_ENV, path, 1);
    SYSSPAN_DECIDE("bench", "record", -1, 0); /* maps the ring, sets up this thread */
    unlink(path);
    double best = 1e9, best_clock = 1e9;
    for (int batch = 0; batch < BATCHES; batch++) {
        free_all(ring);
        double t0 = thread_s();
        for (unsigned i = 0; i < SLOTS - 1; i++) SYSSPAN_DECIDE("bench", "record", i, i & 1);
        double per = (thread_s() - t0) / (SLOTS - 1) * 1e9;
        if (per < best) best = per;
        t0 = thread_s();
        for (unsigned i = 0; i < SLOTS - 1; i++) (void)sysspan__now_ns();
        per = (thread_s() - t0) / (SLOTS - 1) * 1e9;
        if (per < best_clock) best_clock = per;
    }
    if (*SYSSPAN__U64(ring, SYSSPAN_H_FULL) != 0) {
        fprintf(stderr, "records were lost: the figure would not be of the record path\n");
        return 1;
    }
    printf("%.2f %.2f\n", best, best_clock);
    return 0;
}
