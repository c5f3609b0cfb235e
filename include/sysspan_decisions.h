/* sysspan_decisions.h - record decisions into sysspan's shared-memory decision ring.
 *
 * Header-only. Include it in a C or C++ program (or bind it from Rust through FFI) and
 * link with -lm (the geometric sampling draw uses log()):
 *
 *     #include "sysspan_decisions.h"
 *     SYSSPAN_DECIDE("codegen", "integer_type", max_value, chosen_bits);
 *
 * Under sysspan, SYSSPAN_DECISION_RING names the ring file; the first decision of the
 * process maps it (no file descriptor is kept). Without that variable every decision costs
 * one thread-local decrement, like a sampled-out one. Layout and protocol:
 * docs/decision-ring.md. Each translation unit that includes this header keeps its own
 * mapping and per-thread sampling state.
 */
#ifndef SYSSPAN_DECISIONS_H
#define SYSSPAN_DECISIONS_H

#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SYSSPAN_RING_ENV "SYSSPAN_DECISION_RING"
#define SYSSPAN_RING_MAGIC "SYSSPDR1"
#define SYSSPAN_RING_VERSION 2u

/* header offsets (bytes from the start of the file) */
#define SYSSPAN_H_MAGIC 0
#define SYSSPAN_H_VERSION 8
#define SYSSPAN_H_HEADER_SIZE 12
#define SYSSPAN_H_SLOT_SIZE 16
#define SYSSPAN_H_SLOT_COUNT 20
#define SYSSPAN_H_SAMPLE 24
#define SYSSPAN_H_RATE 32
#define SYSSPAN_H_HEAD 64
#define SYSSPAN_H_FULL 128
#define SYSSPAN_H_SKIPPED 136
#define SYSSPAN_H_TAIL 192

/* slot offsets (bytes from the start of a slot) */
#define SYSSPAN_S_SEQ 0
#define SYSSPAN_S_OWNER 8
#define SYSSPAN_S_CHECK 12
#define SYSSPAN_S_START 16
#define SYSSPAN_S_END 24
#define SYSSPAN_S_SKIPPED 32
#define SYSSPAN_S_TID 40
#define SYSSPAN_S_LINE 44
#define SYSSPAN_S_COLUMN 48
#define SYSSPAN_S_LEN 52
#define SYSSPAN_S_PAYLOAD 56

/* A writer gives up (and counts the decision as dropped) after this many lost races for a
 * slot, so a corrupted ring can never make it spin. */
#define SYSSPAN_RESERVE_TRIES 256

enum { SYSSPAN_WRITTEN = 0, SYSSPAN_FULL = 1, SYSSPAN_TOO_BIG = 2 };

#define SYSSPAN__U64(base, off) ((uint64_t *)((char *)(base) + (off)))
#define SYSSPAN__U32(base, off) ((uint32_t *)((char *)(base) + (off)))

/* ----------------------------------------------------------------- layout helpers */

static inline uint32_t sysspan_ring_slot_size(const void *base) {
    return *SYSSPAN__U32(base, SYSSPAN_H_SLOT_SIZE);
}

static inline uint32_t sysspan_ring_slot_count(const void *base) {
    return *SYSSPAN__U32(base, SYSSPAN_H_SLOT_COUNT);
}

static inline char *sysspan_ring_slot(void *base, uint64_t pos) {
    uint32_t count = sysspan_ring_slot_count(base);
    return (char *)base + *SYSSPAN__U32(base, SYSSPAN_H_HEADER_SIZE) +
           (size_t)(pos & (uint64_t)(count - 1)) * sysspan_ring_slot_size(base);
}

/* A slot's sequence word is stored minus the slot's index (pos mod slot_count), so that a
 * zero-filled file is a ready ring: every slot reads as free for its first-lap position,
 * and sysspan need not write (and fault in) every page before the command starts. */
static inline uint64_t sysspan_ring_index(const void *base, uint64_t pos) {
    return pos & (uint64_t)(sysspan_ring_slot_count(base) - 1);
}

/* The record checksum, computed over a slot in place (it reads the payload's last word
 * whole): 64-bit FNV-style mixing over 8-byte little-endian words of slot bytes 16..55 and
 * the zero-padded payload, seeded with the slot position, folded to 32 bits. It exposes
 * records a stalled writer overwrote after the reader gave up on it. */
static inline uint32_t sysspan_ring_check(const char *slot, uint64_t pos, uint32_t len) {
    uint64_t h = 0xcbf29ce484222325ull ^ pos;
    const char *p = slot + SYSSPAN_S_START;
    const char *end = slot + SYSSPAN_S_PAYLOAD + len;
    uint64_t w;
    while (p + 8 <= end) {
        memcpy(&w, p, 8);
        h = (h ^ w) * 0x100000001b3ull;
        p += 8;
    }
    if (p < end) { /* the last word, zero-padded: read whole (it is inside the slot, whose
                      * size is a multiple of 8) and mask, rather than a variable-size copy */
        memcpy(&w, p, 8);
        w &= ~0ull >> (8 * (8 - (end - p)));
        h = (h ^ w) * 0x100000001b3ull;
    }
    return (uint32_t)(h ^ (h >> 32));
}

/* Validate a mapped ring of `size` bytes: magic, version, power-of-two geometry that fits. */
static inline int sysspan_ring_valid(const void *base, size_t size) {
    if (size < 4096 || memcmp(base, SYSSPAN_RING_MAGIC, 8) != 0) return 0;
    if (*SYSSPAN__U32(base, SYSSPAN_H_VERSION) != SYSSPAN_RING_VERSION) return 0;
    uint64_t hs = *SYSSPAN__U32(base, SYSSPAN_H_HEADER_SIZE);
    uint64_t ss = sysspan_ring_slot_size(base), sc = sysspan_ring_slot_count(base);
    if (hs < 256 || ss < 128 || sc < 2 || (ss & (ss - 1)) || (sc & (sc - 1)) || ss % 8) return 0;
    return hs + ss * sc <= size;
}

/* Map the ring at `path` read-write and close the descriptor; NULL when it is not a ring. */
static inline void *sysspan_ring_map(const char *path) {
    int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return NULL;
    struct stat st;
    void *base = MAP_FAILED;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= 4096)
        base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (base == MAP_FAILED) return NULL;
    if (!sysspan_ring_valid(base, (size_t)st.st_size)) {
        munmap(base, (size_t)st.st_size);
        return NULL;
    }
    return base;
}

/* Reserve the slot for the next position and stamp it with the writer's pid. Returns the
 * slot (its position in *pos_out), or NULL when the ring is full or the slot could not be
 * won in SYSSPAN_RESERVE_TRIES attempts; NULL adds one to the header's `full` counter, so
 * the writer never blocks and the decision is still counted. */
static inline char *sysspan_ring_reserve(void *base, uint64_t *pos_out, uint32_t pid) {
    uint64_t *head = SYSSPAN__U64(base, SYSSPAN_H_HEAD);
    uint64_t pos = __atomic_load_n(head, __ATOMIC_RELAXED);
    for (int tries = 0; tries < SYSSPAN_RESERVE_TRIES; tries++) {
        char *slot = sysspan_ring_slot(base, pos);
        uint64_t seq = __atomic_load_n(SYSSPAN__U64(slot, SYSSPAN_S_SEQ), __ATOMIC_ACQUIRE) +
                       sysspan_ring_index(base, pos);
        int64_t diff = (int64_t)(seq - pos);
        if (diff == 0) {
            if (__atomic_compare_exchange_n(head, &pos, pos + 1, 1, __ATOMIC_RELAXED,
                                            __ATOMIC_RELAXED)) {
                __atomic_store_n(SYSSPAN__U32(slot, SYSSPAN_S_OWNER), pid, __ATOMIC_RELAXED);
                *pos_out = pos;
                return slot;
            }
        } else if (diff < 0) {
            break; /* the reader has not freed this slot from the previous lap: full */
        } else {
            pos = __atomic_load_n(head, __ATOMIC_RELAXED);
        }
    }
    __atomic_fetch_add(SYSSPAN__U64(base, SYSSPAN_H_FULL), 1, __ATOMIC_RELAXED);
    return NULL;
}

/* Fill the fixed fields of a reserved slot whose payload (`len` bytes at SYSSPAN_S_PAYLOAD)
 * is already in place, and publish it. The commit is a CAS, not a plain release store: if
 * the reader gave up on this slot meanwhile (it moved seq on to the next lap), a store would
 * move seq back and wedge the slot for every later lap, and the record would be counted
 * twice; the failed CAS leaves it as the reader set it. */
static inline void sysspan_ring_publish(const void *base, char *slot, uint64_t pos,
                                        uint32_t len, uint64_t start_ns, uint64_t end_ns,
                                        uint64_t skipped, uint32_t tid, uint32_t line,
                                        uint32_t column) {
    *SYSSPAN__U64(slot, SYSSPAN_S_START) = start_ns;
    *SYSSPAN__U64(slot, SYSSPAN_S_END) = end_ns;
    *SYSSPAN__U64(slot, SYSSPAN_S_SKIPPED) = skipped;
    *SYSSPAN__U32(slot, SYSSPAN_S_TID) = tid;
    *SYSSPAN__U32(slot, SYSSPAN_S_LINE) = line;
    *SYSSPAN__U32(slot, SYSSPAN_S_COLUMN) = column;
    *SYSSPAN__U32(slot, SYSSPAN_S_LEN) = len;
    *SYSSPAN__U32(slot, SYSSPAN_S_CHECK) = sysspan_ring_check(slot, pos, len);
    uint64_t expected = pos - sysspan_ring_index(base, pos);
    __atomic_compare_exchange_n(SYSSPAN__U64(slot, SYSSPAN_S_SEQ), &expected, expected + 1, 0,
                                __ATOMIC_RELEASE, __ATOMIC_RELAXED);
}

/* Copy `payload` into a reserved slot, fill it and publish it (see sysspan_ring_publish). */
static inline void sysspan_ring_commit(const void *base, char *slot, uint64_t pos,
                                       const void *payload, uint32_t len, uint64_t start_ns,
                                       uint64_t end_ns, uint64_t skipped, uint32_t tid,
                                       uint32_t line, uint32_t column) {
    memcpy(slot + SYSSPAN_S_PAYLOAD, payload, len);
    sysspan_ring_publish(base, slot, pos, len, start_ns, end_ns, skipped, tid, line, column);
}

/* Reserve a slot for a `len`-byte payload: the slot, or NULL with *status SYSSPAN_TOO_BIG
 * or SYSSPAN_FULL (both counted in the header's `full`). */
static inline char *sysspan__reserve_for(void *base, uint32_t len, uint32_t pid,
                                         uint64_t *pos, int *status) {
    if (len > sysspan_ring_slot_size(base) - SYSSPAN_S_PAYLOAD) {
        __atomic_fetch_add(SYSSPAN__U64(base, SYSSPAN_H_FULL), 1, __ATOMIC_RELAXED);
        *status = SYSSPAN_TOO_BIG;
        return NULL;
    }
    *status = SYSSPAN_FULL;
    return sysspan_ring_reserve(base, pos, pid);
}

/* Reserve, fill, commit: SYSSPAN_WRITTEN, or SYSSPAN_FULL / SYSSPAN_TOO_BIG (counted in the
 * header's `full`). */
static inline int sysspan_ring_write(void *base, const void *payload, uint32_t len,
                                     uint64_t start_ns, uint64_t end_ns, uint64_t skipped,
                                     uint32_t pid, uint32_t tid, uint32_t line,
                                     uint32_t column) {
    uint64_t pos;
    int status;
    char *slot = sysspan__reserve_for(base, len, pid, &pos, &status);
    if (!slot) return status;
    sysspan_ring_commit(base, slot, pos, payload, len, start_ns, end_ns, skipped, tid, line, column);
    return SYSSPAN_WRITTEN;
}

/* Decisions sampled away and not yet carried by a record (reported at thread/process exit). */
static inline void sysspan_ring_add_skipped(void *base, uint64_t n) {
    if (n) __atomic_fetch_add(SYSSPAN__U64(base, SYSSPAN_H_SKIPPED), n, __ATOMIC_RELAXED);
}

/* --------------------------------------------------------------- msgpack payload */

static inline char *sysspan__mp_str(char *p, const char *end, const char *s) {
    size_t n = strlen(s);
    if (n < 32) {
        if (p + 1 + n > end) return NULL;
        *p++ = (char)(0xa0 | n);
    } else if (n < 256) {
        if (p + 2 + n > end) return NULL;
        *p++ = (char)0xd9;
        *p++ = (char)n;
    } else if (n < 65536) {
        if (p + 3 + n > end) return NULL;
        *p++ = (char)0xda;
        *p++ = (char)(n >> 8);
        *p++ = (char)n;
    } else {
        return NULL;
    }
    memcpy(p, s, n);
    return p + n;
}

/* Bytes sysspan__mp_int writes for `v`. */
static inline uint32_t sysspan__mp_int_len(int64_t v) { return v >= -32 && v < 128 ? 1 : 9; }

static inline char *sysspan__mp_int(char *p, const char *end, int64_t v) {
    if (v >= -32 && v < 128) {
        if (p + 1 > end) return NULL;
        *p++ = (char)(int8_t)v;
        return p;
    }
    if (p + 9 > end) return NULL;
    uint64_t be = __builtin_bswap64((uint64_t)v); /* int 64, big-endian */
    *p++ = (char)0xd3;
    memcpy(p, &be, 8);
    return p + 8;
}

/* The payload's constant part: the array header and [category, name, file]. Returns its
 * length, or -1 when it does not fit `cap`. */
static inline int sysspan_payload_prefix(char *buf, size_t cap, const char *category,
                                         const char *name, const char *file) {
    char *p = buf, *end = buf + cap;
    if (cap < 1) return -1;
    *p++ = (char)0x95;
    if (!(p = sysspan__mp_str(p, end, category))) return -1;
    if (!(p = sysspan__mp_str(p, end, name))) return -1;
    if (!(p = sysspan__mp_str(p, end, file))) return -1;
    return (int)(p - buf);
}

/* The payload: msgpack array [category, name, file, input, result]. */
static inline int sysspan_payload_i64(char *buf, size_t cap, const char *category,
                                      const char *name, const char *file, int64_t input,
                                      int64_t result) {
    int n = sysspan_payload_prefix(buf, cap, category, name, file);
    if (n < 0) return -1;
    char *p = buf + n, *end = buf + cap;
    if (!(p = sysspan__mp_int(p, end, input))) return -1;
    if (!(p = sysspan__mp_int(p, end, result))) return -1;
    return (int)(p - buf);
}

/* Write the record [prefix..., input, result] straight into its slot (no payload copy on
 * the stack): SYSSPAN_WRITTEN, or SYSSPAN_FULL / SYSSPAN_TOO_BIG (counted in `full`). */
static inline int sysspan_ring_write_i64(void *base, const char *prefix, uint32_t prefix_len,
                                         int64_t input, int64_t result, uint64_t now_ns,
                                         uint64_t skipped, uint32_t pid, uint32_t tid,
                                         uint32_t line) {
    uint32_t len = prefix_len + sysspan__mp_int_len(input) + sysspan__mp_int_len(result);
    uint64_t pos;
    int status;
    char *slot = sysspan__reserve_for(base, len, pid, &pos, &status);
    if (!slot) return status;
    char *p = slot + SYSSPAN_S_PAYLOAD;
    /* whole words, up to 7 bytes past the prefix (input and result overwrite them; the slot
     * has room, since len <= slot_size - 56 and prefix_len + 2 <= len); `prefix` is a site's
     * or a 512-byte buffer, so reading the rounded-up length stays inside it */
    for (uint32_t i = 0; i < prefix_len; i += 8) memcpy(p + i, prefix + i, 8);
    p = sysspan__mp_int(p + prefix_len, p + len, input);
    sysspan__mp_int(p, slot + SYSSPAN_S_PAYLOAD + len, result);
    sysspan_ring_publish(base, slot, pos, len, now_ns, now_ns, skipped, tid, line, 0);
    return SYSSPAN_WRITTEN;
}

/* ------------------------------------------------------------- the recording API */

/* Per-thread countdowns: calls left until the next recorded decision. There are
 * SYSSPAN_LANES of them, and a call decrements the one picked by its stack pointer: with a
 * single counter every call's decrement waits for the previous call's store (a
 * store-to-load chain of ~5 cycles), which in a recursive function like fib costs more than
 * the call itself; calls at different stack depths now touch different counters, so that
 * chain is broken and the decrement overlaps with the function's own work. Each lane is an
 * independent geometric countdown, so every call is still kept with probability `ratio`
 * and the skipped calls of every lane are counted. A lane starts at 0, so its first call
 * takes the slow path that sets it up. */
#define SYSSPAN_LANES 16
/* Compiled with -fPIC (a shared library, an extension module) the default TLS model makes
 * every countdown a call to __tls_get_addr; initial-exec makes it one load from the GOT
 * (x1.9 faster on fib). It takes about 270 bytes of static TLS, which a library loaded by
 * dlopen() gets from glibc's reserve; define SYSSPAN_TLS_MODEL as "global-dynamic" if that
 * reserve is exhausted. Executables (also PIE) keep the default: local-exec, cheaper still. */
#if !defined(SYSSPAN_TLS_MODEL) && defined(__PIC__) && !defined(__PIE__)
#define SYSSPAN_TLS_MODEL "initial-exec"
#endif
#ifdef SYSSPAN_TLS_MODEL
#define SYSSPAN__TLS static __thread __attribute__((tls_model(SYSSPAN_TLS_MODEL)))
#else
#define SYSSPAN__TLS static __thread
#endif
/* A lane is 16 bytes, so that bits 4..7 of the stack pointer are its byte offset (one `and`,
 * no shift); indexing with a scale inside a %fs-relative address measured ~10% slower on
 * fib. */
struct sysspan__lane {
    int64_t left; /* calls left until the next recorded decision */
    int64_t gap;  /* the gap `left` started from; 0: the lane is not set up yet */
};
SYSSPAN__TLS struct sysspan__lane sysspan__lanes[SYSSPAN_LANES];
SYSSPAN__TLS uint64_t sysspan__rng;
SYSSPAN__TLS uint32_t sysspan__tid;
/* The header's rate limit, applied per thread (sysspan's reader still limits the whole
 * run): a token bucket in units of 1e-9 token, holding at most one second's worth, and
 * the decisions it refused that no record has carried yet. It starts with
 * 1/SYSSPAN_START_DIV of a second's worth (at least one token), so that the decisions of a
 * thread deciding flat out are spread over its run rather than being its first second's
 * worth of calls (the Python API does the same). */
#define SYSSPAN_START_DIV 100
struct sysspan__bucket {
    uint64_t tokens, last_ns; /* last_ns 0: not used yet */
    uint64_t refused;
};
SYSSPAN__TLS struct sysspan__bucket sysspan__bucket;
/* When each lane last reached zero (0: never), to size a skip while the bucket is empty. */
SYSSPAN__TLS uint64_t sysspan__lane_ns[SYSSPAN_LANES];

/* The lane of this call, picked by bits 4..7 of the stack pointer (frames are 16-byte
 * aligned, so nested calls land in different lanes). Not volatile: the compiler may reuse
 * it within a function, any lane is correct. Without a known stack register: one lane. */
#if defined(__x86_64__)
#define SYSSPAN__READ_SP(v) __asm__("mov %%rsp, %0" : "=r"(v))
#elif defined(__i386__)
#define SYSSPAN__READ_SP(v) __asm__("mov %%esp, %0" : "=r"(v))
#elif defined(__aarch64__)
#define SYSSPAN__READ_SP(v) __asm__("mov %0, sp" : "=r"(v))
#endif
#ifdef SYSSPAN__READ_SP
#define SYSSPAN__LANE()                                                                     \
    __extension__({                                                                         \
        uintptr_t sysspan__sp;                                                              \
        SYSSPAN__READ_SP(sysspan__sp);                                                      \
        (struct sysspan__lane *)((char *)sysspan__lanes +                                   \
                                 (sysspan__sp & (SYSSPAN_LANES - 1) * 16));                 \
    })
#else
#define SYSSPAN__LANE() (&sysspan__lanes[0])
#endif

static inline uint64_t sysspan__now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A record's time, in the ring's time base (CLOCK_REALTIME nanoseconds), from the time
 * stamp counter where the kernel itself keeps time with it: clock_gettime() was about a
 * quarter of a record's cost, a bare rdtsc is half of that. Each thread anchors the counter
 * to clock_gettime() at least every SYSSPAN_TSC_SPAN ticks (~1-2 ms) and interpolates in
 * between with the rate measured between its last two anchors; an anchor whose reads took
 * longer than SYSSPAN_TSC_JITTER ticks is not used, so a time stays within about a
 * microsecond of clock_gettime()'s (0.11 us measured under load). Until a thread has two
 * anchors, and where the kernel's clocksource is not "tsc" (or with -DSYSSPAN_NO_TSC),
 * every record calls clock_gettime(). */
#if defined(__x86_64__) && !defined(SYSSPAN_NO_TSC)
#define SYSSPAN__TSC 1
#define SYSSPAN_TSC_SPAN (1ull << 22)
#define SYSSPAN_TSC_JITTER 4000ull /* ticks (~1-2 us): a slower anchor read was interrupted */
struct sysspan__clock {
    uint64_t tsc, ns;   /* the last anchor */
    double ns_per_tick; /* 0: not measured yet */
};
SYSSPAN__TLS struct sysspan__clock sysspan__clk;
static int sysspan__use_tsc;

/* 1 when the kernel's current clocksource is the time stamp counter. */
static inline int sysspan__kernel_uses_tsc(void) {
    char buf[16] = {0};
    int fd = open("/sys/devices/system/clocksource/clocksource0/current_clocksource",
                  O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    return n >= 3 && memcmp(buf, "tsc", 3) == 0 && (n == 3 || buf[3] == '\n');
}

/* A new anchor for this thread (and its rate, measured from the previous one); returns
 * clock_gettime()'s time either way. */
__attribute__((noinline, cold)) static uint64_t sysspan__tsc_anchor(void) {
    struct sysspan__clock *c = &sysspan__clk;
    uint64_t t0 = __builtin_ia32_rdtsc();
    uint64_t ns = sysspan__now_ns();
    uint64_t t1 = __builtin_ia32_rdtsc();
    uint64_t t = t0 + (t1 - t0) / 2;
    if (t1 - t0 > SYSSPAN_TSC_JITTER) return ns;
    if (c->tsc && c->ns_per_tick == 0 && t - c->tsc < SYSSPAN_TSC_SPAN)
        return ns; /* too soon after the first anchor to measure the rate well */
    if (c->tsc && t - c->tsc < (1ull << 40) && ns > c->ns)
        c->ns_per_tick = (double)(ns - c->ns) / (double)(t - c->tsc);
    c->tsc = t;
    c->ns = ns;
    return ns;
}

static inline uint64_t sysspan__record_ns(void) {
    if (!sysspan__use_tsc) return sysspan__now_ns();
    uint64_t tick = __builtin_ia32_rdtsc();
    uint64_t d = tick - sysspan__clk.tsc;
    if (__builtin_expect(d < SYSSPAN_TSC_SPAN && sysspan__clk.ns_per_tick > 0, 1))
        return sysspan__clk.ns + (uint64_t)((double)d * sysspan__clk.ns_per_tick);
    return sysspan__tsc_anchor();
}
#else
static inline uint64_t sysspan__record_ns(void) { return sysspan__now_ns(); }
#endif

static void *sysspan__base;
static uint32_t sysspan__pid;
static uint32_t sysspan__rate;     /* decisions per second per thread; 0 = no limit */
static double sysspan__inv_log1mp; /* 1 / log(1 - ratio); 0 = keep everything */
static int sysspan__never;     /* ratio 0: keep nothing */
static pthread_once_t sysspan__once = PTHREAD_ONCE_INIT;
static pthread_key_t sysspan__key;

static inline void sysspan__thread_flush(void *unused) {
    (void)unused;
    if (!sysspan__base) return;
    uint64_t owed = 0;
    for (unsigned i = 0; i < SYSSPAN_LANES; i++) {
        struct sysspan__lane *l = &sysspan__lanes[i];
        if (l->gap <= 0) continue; /* never used */
        if (l->gap > l->left) owed += (uint64_t)(l->gap - l->left);
        l->gap = l->left;
    }
    owed += sysspan__bucket.refused;
    sysspan__bucket.refused = 0;
    sysspan_ring_add_skipped(sysspan__base, owed);
}

/* Report this thread's sampled-away decisions now (also done at thread and process exit). */
static inline void sysspan_decisions_flush(void) { sysspan__thread_flush(NULL); }

static inline void sysspan__atexit(void) { sysspan__thread_flush(NULL); }

static inline void sysspan__after_fork(void) {
    sysspan__pid = (uint32_t)getpid();
    sysspan__tid = 0;
    sysspan__bucket.refused = 0;
    for (unsigned i = 0; i < SYSSPAN_LANES; i++) /* the parent reports what it skipped */
        if (sysspan__lanes[i].gap > 0) sysspan__lanes[i].gap = sysspan__lanes[i].left;
}

static inline void sysspan__init_process(void) {
    const char *path = getenv(SYSSPAN_RING_ENV);
    void *base = path && *path ? sysspan_ring_map(path) : NULL;
    if (!base) return;
    double ratio;
    memcpy(&ratio, (char *)base + SYSSPAN_H_SAMPLE, sizeof ratio);
    sysspan__rate = *SYSSPAN__U32(base, SYSSPAN_H_RATE);
    if (!(ratio > 0.0)) sysspan__never = 1;
    else if (ratio < 1.0 && isinf(1.0 / log1p(-ratio))) sysspan__never = 1; /* < 1e-308 */
    else if (ratio < 1.0) sysspan__inv_log1mp = 1.0 / log1p(-ratio);
    sysspan__pid = (uint32_t)getpid();
#ifdef SYSSPAN__TSC
    sysspan__use_tsc = sysspan__kernel_uses_tsc();
#endif
    pthread_key_create(&sysspan__key, sysspan__thread_flush);
    pthread_atfork(NULL, NULL, sysspan__after_fork);
    atexit(sysspan__atexit);
    __atomic_store_n(&sysspan__base, base, __ATOMIC_RELEASE);
}

static inline uint64_t sysspan__next_u64(void) {
    uint64_t x = sysspan__rng; /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    sysspan__rng = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* Calls until the next kept one (>= 1): geometric with success probability `ratio`.
 * log(u) / log(1 - ratio) is >= 0, so the integer conversion is the floor; a multiply by
 * the reciprocal instead of a division moves the result by at most one rounding step. */
static inline int64_t sysspan__draw_gap(void) {
    if (sysspan__never) return INT64_MAX;
    if (sysspan__inv_log1mp == 0.0) return 1;
    double u = ((double)(sysspan__next_u64() >> 11) + 1.0) / 9007199254740992.0; /* (0, 1] */
    double g = log(u) * sysspan__inv_log1mp;
    return g >= 9.0e18 ? INT64_MAX : (int64_t)g + 1;
}

/* May this thread record a decision at `now_ns` under the header's rate limit? Takes a
 * token if so. Time going backwards (another thread's clock anchor) never refills. */
static inline int sysspan__rate_allows(uint64_t now_ns) {
    struct sysspan__bucket *b = &sysspan__bucket;
    const uint64_t full = (uint64_t)sysspan__rate * 1000000000ull;
    if (b->last_ns == 0) {
        uint64_t start = sysspan__rate / SYSSPAN_START_DIV;
        b->tokens = (start ? start : 1) * 1000000000ull;
        b->last_ns = now_ns;
    } else if (now_ns - b->last_ns >= 1000000000ull) {
        if (now_ns > b->last_ns) b->tokens = full;
        b->last_ns = now_ns > b->last_ns ? now_ns : b->last_ns;
    } else if (now_ns > b->last_ns) {
        b->tokens += (now_ns - b->last_ns) * sysspan__rate; /* < 2^63: under 1 s x 2^32 */
        if (b->tokens > full) b->tokens = full;
        b->last_ns = now_ns;
    }
    if (b->tokens < 1000000000ull) return 0;
    b->tokens -= 1000000000ull;
    return 1;
}

/* The bucket refused the call that emptied `lane` at `now_ns`, `calls` calls after the
 * lane's previous zero at `prev_ns`: skip about as many of this lane's calls as arrive
 * before the bucket has a token again (they would all be refused), instead of stopping
 * for each sampled one. They are counted like any skipped call. */
static inline void sysspan__skip_while_empty(struct sysspan__lane *lane, uint64_t calls,
                                             uint64_t prev_ns, uint64_t now_ns) {
    if (!prev_ns || now_ns <= prev_ns) return;
    uint64_t wait_ns = (1000000000ull - sysspan__bucket.tokens + sysspan__rate - 1) / sysspan__rate;
    double skip = (double)calls / (double)(now_ns - prev_ns) * (double)wait_ns;
    if (skip > (double)lane->gap) lane->gap = lane->left = skip < 1e9 ? (int64_t)skip : 1000000000;
}

/* One call site of SYSSPAN_DECIDE (a static per expansion): its payload prefix (array
 * header, category, name, file), encoded by the first record of the site, so that a record
 * only encodes its input and result. Only sites whose category and name are string literals
 * get one; a name in a buffer may change between calls. */
#define SYSSPAN_SITE_BYTES 120
struct sysspan_site {
    uint32_t state; /* 0: not encoded, 1: a thread is encoding it, 2: ready */
    uint32_t len;
    char prefix[SYSSPAN_SITE_BYTES];
};

/* The payload prefix of a call site into `buf` (cap 512): its length, or -1 when too long.
 * The first thread to get here fills the site's cache; others (or uncacheable sites) use
 * their own copy in `buf`. */
static inline int sysspan__site_prefix(struct sysspan_site *site, char *buf,
                                       const char **prefix, const char *category,
                                       const char *name, const char *file) {
    if (site && __atomic_load_n(&site->state, __ATOMIC_ACQUIRE) == 2) {
        *prefix = site->prefix;
        return (int)site->len;
    }
    int n = sysspan_payload_prefix(buf, 512, category, name, file);
    *prefix = buf;
    uint32_t idle = 0;
    if (site && n >= 0 && n <= SYSSPAN_SITE_BYTES &&
        __atomic_compare_exchange_n(&site->state, &idle, 1, 0, __ATOMIC_ACQUIRE,
                                    __ATOMIC_RELAXED)) {
        memcpy(site->prefix, buf, (size_t)n);
        site->len = (uint32_t)n;
        __atomic_store_n(&site->state, 2, __ATOMIC_RELEASE);
    }
    return n;
}

/* The slow path of SYSSPAN_DECIDE: the countdown of `lane` reached zero. Kept out of line
 * (and cold) so that the hot function the macro sits in stays as small as without it. */
__attribute__((noinline, cold)) static void
sysspan_decide_slow_i64(struct sysspan__lane *lane, struct sysspan_site *site,
                        const char *category, const char *name, const char *file, int line,
                        int64_t input, int64_t result) {
    void *base = __atomic_load_n(&sysspan__base, __ATOMIC_ACQUIRE);
    if (__builtin_expect(!base, 0)) {
        pthread_once(&sysspan__once, sysspan__init_process);
        base = __atomic_load_n(&sysspan__base, __ATOMIC_ACQUIRE);
        if (!base) { /* not under sysspan: one decrement per call from now on */
            for (unsigned i = 0; i < SYSSPAN_LANES; i++) sysspan__lanes[i].left = INT64_MAX;
            return;
        }
    }
    if (__builtin_expect(sysspan__rng == 0, 0)) { /* this thread's first decision */
        uint64_t seed = sysspan__now_ns() ^ ((uint64_t)(uintptr_t)&sysspan__lanes << 17);
        sysspan__rng = seed ? seed : 0x9E3779B97F4A7C15ull;
        sysspan__tid = (uint32_t)syscall(SYS_gettid);
        pthread_setspecific(sysspan__key, (void *)1);
    }
    if (__builtin_expect(lane->gap == 0, 0)) { /* this lane's first call: first of a gap */
        lane->gap = lane->left = sysspan__draw_gap();
        if (--lane->left > 0) return;
    }
    if (__builtin_expect(!sysspan__tid, 0)) sysspan__tid = (uint32_t)syscall(SYS_gettid);
    uint64_t skipped = (uint64_t)(lane->gap - 1);
    lane->gap = lane->left = sysspan__draw_gap();
    uint64_t now = sysspan__record_ns();
    uint64_t *lane_ns = &sysspan__lane_ns[lane - sysspan__lanes], prev_ns = *lane_ns;
    *lane_ns = now;
    if (sysspan__rate && !sysspan__rate_allows(now)) { /* carried by the next record */
        sysspan__bucket.refused += skipped + 1;
        sysspan__skip_while_empty(lane, skipped + 1, prev_ns, now);
        return;
    }
    skipped += sysspan__bucket.refused;
    sysspan__bucket.refused = 0;
    char buf[512];
    const char *prefix;
    int n = sysspan__site_prefix(site, buf, &prefix, category, name, file);
    if (n < 0) {
        sysspan_ring_add_skipped(base, skipped);
        __atomic_fetch_add(SYSSPAN__U64(base, SYSSPAN_H_FULL), 1, __ATOMIC_RELAXED);
        return;
    }
    if (sysspan_ring_write_i64(base, prefix, (uint32_t)n, input, result, now, skipped,
                               sysspan__pid, sysspan__tid, (uint32_t)line) != SYSSPAN_WRITTEN)
        sysspan_ring_add_skipped(base, skipped); /* the record that carried them was lost */
}

/* Record an instant decision with integer input and result at this source line. A call
 * the sampler skips costs one thread-local decrement (of its stack depth's lane) and a
 * predictable branch. */
#define SYSSPAN_DECIDE(category, name, input, result)                                       \
    do {                                                                                    \
        static struct sysspan_site sysspan__site;                                           \
        struct sysspan__lane *sysspan__lane = SYSSPAN__LANE();                              \
        if (__builtin_expect(--sysspan__lane->left > 0, 1)) break;                          \
        sysspan_decide_slow_i64(                                                            \
            sysspan__lane,                                                                  \
            __builtin_constant_p(category) && __builtin_constant_p(name) ? &sysspan__site   \
                                                                         : NULL,            \
            (category), (name), __FILE__, __LINE__, (int64_t)(input), (int64_t)(result));   \
    } while (0)

#endif /* SYSSPAN_DECISIONS_H */
