/* The ptrace stop loop, compiled.
 *
 * Why C: in Python every stop costs about 12 us of interpreter time (waitpid, the syscall
 * info request, unpacking, dictionary bookkeeping), more than the kernel's own cost of the
 * stop. Here a stop is a handful of system calls and no allocation.
 *
 * Shape: Loop.run() holds the tracer role (every ptrace request comes from the thread that
 * seized the tracees, so the whole loop runs on the caller's thread) and releases the GIL
 * while it runs. It writes fixed-layout records (the structs in _records.h, which also
 * parses them into records.py's objects) into a bounded byte ring; Loop.drain() hands whole
 * records to a Python consumer on another thread. When the ring is full the loop waits for
 * the consumer (back-pressure): nothing is dropped and memory stays at the ring's size.
 *
 * What is read from tracee memory is described by per-syscall "plans" (a few generic read
 * operations compiled by the Python decoder). Syscalls whose arguments need reads that
 * depend on other reads (argv arrays, iovecs, msghdr) and the stack capture of --source/-k
 * call back into Python while the tracee is still stopped.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "_records.h"
#include "_sites.h"

#ifndef PTRACE_GET_SYSCALL_INFO
#define PTRACE_GET_SYSCALL_INFO 0x420e
#endif
#ifndef PTRACE_SEIZE
#define PTRACE_SEIZE 0x4206
#endif
#ifndef PTRACE_INTERRUPT
#define PTRACE_INTERRUPT 0x4207
#endif
#ifndef PTRACE_LISTEN
#define PTRACE_LISTEN 0x4208
#endif
#define EV_FORK 1
#define EV_VFORK 2
#define EV_CLONE 3
#define EV_EXEC 4
#define EV_SECCOMP 7
#define EV_STOP 128
#define OP_ENTRY 1
#define OP_EXIT 2
#define OP_SECCOMP 3

/* How long the consumer sleeps between looks when no full batch woke it: the latency of a
 * trickle of records (a mostly idle tracee). */
#define DRAIN_POLL_NS (10 * 1000000)
/* Most bytes one drain() hands out (about 2,000 syscall records). */
#define DRAIN_MAX_BYTES (256 * 1024)

/* Hook events (what Python is asked to do while the tracee is stopped). */
enum { H_ENTRY = 1, H_EXIT = 2, H_EXEC = 3, H_GONE = 4 };
/* Plan operations: P_MEM and P_CSTR (_records.h). */
enum { PF_RVAL = 1, PF_U32LEN = 2 };

typedef struct {
    int8_t arg, op, len_arg, flags;
    int8_t cond_arg, pad[3];
    uint32_t mult;
    uint64_t cap;
    uint64_t cond_val;
} plan_op;

typedef struct {
    plan_op *ops;
    int n;
    int py; /* call back into Python for this side */
} plan_side;

typedef struct thr {
    int tid, tgid;
    int in_call, pre_exec, ours, caller;
    int64_t nr;
    uint64_t args[6];
    uint64_t t0, seq0, ip, sp;
    int pyflags;
    char *scratch; /* entry blobs until the exit stop */
    size_t slen, scap;
    uint32_t nblobs;
    int truncated;
    struct thr *prev, *next;
} thr;

typedef struct {
    int tgid;
    int recorded;
    uint64_t sgen; /* the image --source's sites (_sites.h) were learned in */
} proc;

struct ptrace_syscall_info_x {
    uint8_t op;
    uint8_t pad[3];
    uint32_t arch;
    uint64_t ip, sp;
    union {
        struct { uint64_t nr; uint64_t args[6]; } entry;
        struct { int64_t rval; uint8_t is_error; } exit;
        struct { uint64_t nr; uint64_t args[6]; uint32_t ret_data; } seccomp;
    } u;
};

typedef struct {
    PyObject_HEAD
    /* configuration */
    long options;
    int follow, seccomp_mode, seccomp_fd, record_all;
    uint8_t traced[512]; /* bitmap of nrs 0..4095; all_traced when NULL filter */
    int all_traced;
    uint8_t execve[512];
    plan_side *entry_plan, *exit_plan;
    int nplans;
    PyObject *hook;
    int hook_source; /* call H_ENTRY at every recorded entry (stack capture) */
    int site_fast;   /* answer known --source sites here (answer_sites) */
    sites sites;
    site_pre pre; /* the site walk's first word, read with this entry's plan */
    /* tracees */
    int pid_max;
    thr **thr_of;
    proc **proc_of;
    thr live; /* list head */
    int nlive, any_recorded;
    int root_pid, root_status, have_root_status, attached, detaching;
    uint64_t seq, stops, ptrace_errors;
    int seccomp_failed_errno; /* -1: not failed */
    /* ring */
    char *ring;
    uint64_t rsize, head, tail, peak;
    uint64_t waits, lost;
    pthread_mutex_t mu;
    pthread_cond_t cv_data, cv_space;
    int finished, consumer_gone, running;
    PyThreadState *save;
} Loop;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline int bit(const uint8_t *set, int64_t nr) {
    return nr >= 0 && nr < 4096 && (set[nr >> 3] >> (nr & 7)) & 1;
}

/* ---- the GIL ---------------------------------------------------------------------------- */
static void gil_take(Loop *L) { if (L->save) { PyEval_RestoreThread(L->save); L->save = NULL; } }
static void gil_drop(Loop *L) { if (!L->save) L->save = PyEval_SaveThread(); }

/* ---- the ring --------------------------------------------------------------------------- */
/* Returns 0, or -1 with a Python exception set (a signal handler raised while waiting). */
static int ring_put(Loop *L, const void *a, size_t alen, const void *b, size_t blen) {
    size_t size = (alen + blen + 7) & ~(size_t)7;
    pthread_mutex_lock(&L->mu);
    for (;;) {
        if (L->consumer_gone) {
            L->lost++;
            pthread_mutex_unlock(&L->mu);
            return 0;
        }
        uint64_t pos = L->head % L->rsize;
        uint64_t pad = pos + size > L->rsize ? L->rsize - pos : 0;
        if (L->rsize - (L->head - L->tail) >= pad + size) {
            if (pad) {
                rec_hdr *p = (rec_hdr *)(L->ring + pos);
                p->size = (uint32_t)pad;
                p->kind = R_PAD;
                L->head += pad;
                pos = 0;
            }
            memcpy(L->ring + pos, a, alen);
            if (blen) memcpy(L->ring + pos + alen, b, blen);
            ((rec_hdr *)(L->ring + pos))->size = (uint32_t)size;
            L->head += size;
            if (L->head - L->tail > L->peak) L->peak = L->head - L->tail;
            /* Wake the consumer only for a good batch: on a single CPU every wake-up is a
             * context switch away from the tracee. It also looks on its own every few ms. */
            if (L->head - L->tail >= L->rsize / 16) pthread_cond_signal(&L->cv_data);
            pthread_mutex_unlock(&L->mu);
            return 0;
        }
        /* Full: wait for the consumer, waking now and then to run Python signal handlers
         * (Ctrl-C must work while the exporter is stuck). */
        L->waits++;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 100 * 1000000;
        if (until.tv_nsec >= 1000000000) { until.tv_sec++; until.tv_nsec -= 1000000000; }
        int rc = pthread_cond_timedwait(&L->cv_space, &L->mu, &until);
        if (rc == ETIMEDOUT) {
            pthread_mutex_unlock(&L->mu);
            gil_take(L);
            int bad = PyErr_CheckSignals();
            gil_drop(L);
            if (bad) return -1;
            pthread_mutex_lock(&L->mu);
        }
    }
}

/* ---- tracee memory ---------------------------------------------------------------------- */
/* ``pre`` (may be NULL): a stack word fetched with the first read, if it succeeds whole. */
static ssize_t mem_read_with(int pid, uint64_t addr, char *dst, size_t len, site_pre *pre) {
    /* page by page, so a read that runs into an unmapped page keeps what came before */
    size_t done = 0;
    while (done < len) {
        uint64_t a = addr + done;
        size_t room = 4096 - (a & 4095);
        size_t want = len - done < room ? len - done : room;
        struct iovec lo[2] = {{dst + done, want}, {0, 0}};
        struct iovec re[2] = {{(void *)(uintptr_t)a, want}, {0, 0}};
        int n = 1;
        if (pre && pre->addr && !pre->have) {
            lo[1] = (struct iovec){pre->buf, sizeof pre->buf};
            re[1] = (struct iovec){(void *)(uintptr_t)pre->addr, sizeof pre->buf};
            n = 2;
        }
        ssize_t got = process_vm_readv(pid, lo, (unsigned long)n, re, (unsigned long)n, 0);
        if (n == 2) {
            pre->addr = got == (ssize_t)(want + sizeof pre->buf) ? pre->addr : 0;
            pre->have = pre->addr != 0;
            if (got > (ssize_t)want) got = (ssize_t)want;
        }
        if (got <= 0) {
            if (got < 0 && (errno == ENOSYS || errno == EPERM)) {
                char path[64];
                snprintf(path, sizeof path, "/proc/%d/mem", pid);
                int fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0) break;
                ssize_t r = pread(fd, dst + done, len - done, (off_t)a);
                close(fd);
                if (r > 0) done += (size_t)r;
            }
            break;
        }
        done += (size_t)got;
        if ((size_t)got < want) break;
    }
    return (ssize_t)done;
}

static ssize_t mem_read(int pid, uint64_t addr, char *dst, size_t len) {
    return mem_read_with(pid, addr, dst, len, NULL);
}

/* A NUL-terminated string of at most ``limit`` bytes (without the NUL), read a page at a
 * time so a string near the end of a mapping does not fault as a whole. */
static size_t cstr_read_with(int pid, uint64_t addr, char *dst, size_t limit, int *fault,
                             site_pre *pre) {
    size_t have = 0;
    *fault = 0;
    while (have < limit) {
        uint64_t a = addr + have;
        size_t r = 4096 - (a & 4095);
        if (r > limit - have) r = limit - have;
        ssize_t g = mem_read_with(pid, a, dst + have, r, pre);
        if (g <= 0) { *fault = 1; break; }
        void *nul = memchr(dst + have, 0, (size_t)g);
        if (nul) return (size_t)((char *)nul - dst);
        have += (size_t)g;
        if ((size_t)g < r) { *fault = 1; break; }
    }
    return have;
}

static size_t cstr_read(int pid, uint64_t addr, char *dst, size_t limit, int *fault) {
    return cstr_read_with(pid, addr, dst, limit, fault, NULL);
}

static int scratch_room(thr *t, size_t more) {
    if (t->slen + more <= t->scap) return 0;
    size_t cap = t->scap ? t->scap : 512;
    while (cap < t->slen + more) cap *= 2;
    char *p = realloc(t->scratch, cap);
    if (!p) return -1;
    t->scratch = p;
    t->scap = cap;
    return 0;
}

/* Run one side of a syscall's plan, appending blobs to the thread's scratch buffer. */
static void run_plan(Loop *L, thr *t, const plan_side *ps, int at_exit, int64_t rval) {
    size_t budget = L->rsize / 4; /* one record never outgrows a quarter of the ring */
    for (int k = 0; k < ps->n; k++) {
        const plan_op *o = &ps->ops[k];
        uint64_t addr = t->args[(int)o->arg];
        if (!addr) continue;
        if (o->cond_arg >= 0 && t->args[(int)o->cond_arg] != o->cond_val) continue;
        uint64_t len = o->cap;
        if (o->len_arg >= 0) {
            uint64_t v = t->args[(int)o->len_arg];
            if (o->flags & PF_U32LEN) v &= 0xffffffffull;
            if (v < len) len = v;
        }
        if ((o->flags & PF_RVAL) && (uint64_t)rval < len) len = (uint64_t)rval;
        if (o->mult) len *= o->mult;
        if (o->op == P_CSTR) len = o->cap;
        if (t->slen + len + sizeof(blob_hdr) > budget) {
            t->truncated = 1;
            len = t->slen + sizeof(blob_hdr) < budget ? budget - t->slen - sizeof(blob_hdr) : 0;
        }
        if (len == 0 && o->op == P_MEM) {
            /* a zero-length read still answers "readable": keep an empty blob */
        }
        size_t room = (sizeof(blob_hdr) + len + 7) & ~(size_t)7;
        if (scratch_room(t, room + 8) < 0) return;
        blob_hdr *bh = (blob_hdr *)(t->scratch + t->slen);
        char *data = (char *)(bh + 1);
        ssize_t got;
        uint8_t fault = 0;
        if (o->op == P_CSTR) {
            int f = 0;
            got = (ssize_t)cstr_read_with(t->tid, addr, data, len, &f, at_exit ? NULL : &L->pre);
            fault = (uint8_t)f;
            if (got == 0 && fault) continue; /* unreadable: shown as its address */
        } else {
            got = len ? mem_read_with(t->tid, addr, data, len, at_exit ? NULL : &L->pre) : 0;
            if ((uint64_t)got < len) fault = 1;
        }
        bh->addr = addr;
        bh->len = (uint32_t)got;
        bh->at_exit = (uint8_t)at_exit;
        bh->op = (uint8_t)o->op;
        bh->fault = fault;
        bh->pad = 0;
        t->slen += (sizeof(blob_hdr) + (size_t)got + 7) & ~(size_t)7;
        t->nblobs++;
    }
}

/* ---- /proc ------------------------------------------------------------------------------- */
static void proc_ids(int tid, int *tgid, int *ppid) {
    char path[64], buf[1024];
    *tgid = *ppid = 0;
    snprintf(path, sizeof path, "/proc/%d/status", tid);
    FILE *f = fopen(path, "re");
    if (!f) return;
    while (fgets(buf, sizeof buf, f)) {
        if (!strncmp(buf, "Tgid:", 5)) *tgid = atoi(buf + 5);
        else if (!strncmp(buf, "PPid:", 5)) { *ppid = atoi(buf + 5); break; }
    }
    fclose(f);
}

static size_t read_file(const char *path, char *buf, size_t cap) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    size_t n = 0;
    while (n < cap) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r <= 0) break;
        n += (size_t)r;
    }
    close(fd);
    return n;
}

/* ---- bookkeeping ------------------------------------------------------------------------ */
static thr *thr_get(Loop *L, int tid) {
    return tid > 0 && tid < L->pid_max ? L->thr_of[tid] : NULL;
}

static proc *proc_get(Loop *L, int tgid) {
    return tgid > 0 && tgid < L->pid_max ? L->proc_of[tgid] : NULL;
}

static thr *thr_new(Loop *L, int tid, int tgid) {
    if (tid <= 0 || tid >= L->pid_max) return NULL;
    thr *t = L->thr_of[tid];
    if (!t) {
        t = calloc(1, sizeof *t);
        if (!t) return NULL;
        t->tid = tid;
        t->next = L->live.next;
        t->prev = &L->live;
        L->live.next->prev = t;
        L->live.next = t;
        L->thr_of[tid] = t;
        L->nlive++;
    }
    t->tgid = tgid;
    return t;
}

static void thr_free(Loop *L, thr *t) {
    t->prev->next = t->next;
    t->next->prev = t->prev;
    L->thr_of[t->tid] = NULL;
    L->nlive--;
    free(t->scratch);
    free(t);
}

static int emit_start(Loop *L, int tgid, int parent, uint64_t t, int attached) {
    rec_start r = {{0, R_START, 0, tgid, tgid}, t, ++L->seq, parent, attached};
    return ring_put(L, &r, sizeof r, NULL, 0);
}

/* A tracee (thread ``tid`` of process ``tgid``) to keep track of. */
static int add(Loop *L, int tid, int tgid, int parent, uint64_t t, int attached) {
    proc *p = proc_get(L, tgid);
    int rc = 0;
    if (!p && tgid > 0 && tgid < L->pid_max) {
        p = calloc(1, sizeof *p);
        if (!p) return 0;
        p->tgid = tgid;
        p->sgen = ++L->sites.next_gen;
        L->proc_of[tgid] = p;
        /* Without -f (but followed for the seccomp filter's sake) only the first process is
         * recorded; the others are kept running. */
        p->recorded = L->record_all || !L->any_recorded;
        if (p->recorded) {
            L->any_recorded = 1;
            rc = emit_start(L, tgid, parent, t, attached);
        }
    }
    thr_new(L, tid, tgid);
    return rc;
}

static int adopt(Loop *L, int tid, uint64_t t, int parent_tgid) {
    int tgid, ppid;
    proc_ids(tid, &tgid, &ppid);
    if (!tgid) { tgid = tid; ppid = parent_tgid; }
    if (add(L, tid, tgid, parent_tgid ? parent_tgid : ppid, t, 0) < 0) return -1;
    return tgid;
}

static void preq(Loop *L, int req, int tid, long data) {
    if (ptrace(req, tid, 0, data) == -1 && errno != ESRCH) L->ptrace_errors++;
}

static void resume(Loop *L, thr *t, int tid, int sig) {
    preq(L, (L->seccomp_mode && !(t && t->in_call)) ? PTRACE_CONT : PTRACE_SYSCALL, tid, sig);
}

static void forget(Loop *L, int tid) {
    thr *t = thr_get(L, tid);
    if (t) thr_free(L, t);
}

static void do_detach(Loop *L, int tid, int sig) {
    ptrace(PTRACE_DETACH, tid, 0, sig);
    forget(L, tid);
}

/* Call the Python hook (GIL taken for the call). Returns -1 with an exception set. */
static int call_hook(Loop *L, int what, thr *t, int tgid, int64_t rval) {
    if (!L->hook) return 0;
    gil_take(L);
    PyObject *res;
    if (t) {
        res = PyObject_CallFunction(
            L->hook, "iiiL(KKKKKK)LKKKi", what, t->tid, tgid, (long long)t->nr,
            (unsigned long long)t->args[0], (unsigned long long)t->args[1],
            (unsigned long long)t->args[2], (unsigned long long)t->args[3],
            (unsigned long long)t->args[4], (unsigned long long)t->args[5], (long long)rval,
            (unsigned long long)t->ip, (unsigned long long)t->sp,
            (unsigned long long)t->seq0, t->pyflags);
    } else {
        res = PyObject_CallFunction(L->hook, "iiiL()LKKKi", what, 0, tgid, 0LL, 0LL, 0ULL,
                                    0ULL, 0ULL, 0);
    }
    int rc = 0;
    if (!res) rc = -1;
    Py_XDECREF(res);
    gil_drop(L);
    return rc;
}

/* The stack of --source from what Python taught (_sites.h), as a P_STACK blob: 1 if answered.
 * A stack wholly in system libraries (ld.so's start-up stops) is answered with no blob: it
 * names no call site, and symbolising it only to find that cost the export thread ~10 us. */
static int site_blob(Loop *L, thr *t, proc *p) {
    uint64_t pcs[SITES_DEPTH];
    int sys_only = 0;
    int n = p ? site_answer(&L->sites, t->tgid, p->sgen, t->tid, t->ip, t->sp, pcs, &sys_only,
                            &L->pre)
              : 0;
    if (n && L->pre.have) L->sites.prefetched++;
    L->pre.addr = 0;
    L->pre.have = 0;
    if (n && sys_only) {
        L->sites.answered++;
        return 1;
    }
    size_t room = sizeof(blob_hdr) + sizeof pcs;
    if (!n || scratch_room(t, room) < 0) return 0;
    blob_hdr *bh = (blob_hdr *)(t->scratch + t->slen);
    *bh = (blob_hdr){0, (uint32_t)(8 * n), 0, P_STACK, 0, 0};
    memcpy(bh + 1, pcs, 8 * (size_t)n);
    t->slen += sizeof(blob_hdr) + 8 * (size_t)n;
    t->nblobs++;
    L->sites.answered++;
    return 1;
}

static int emit_syscall(Loop *L, thr *t, int has_rval, int64_t rval, uint64_t t1) {
    rec_syscall r;
    memset(&r, 0, sizeof r);
    r.h.kind = R_SYSCALL;
    r.h.flags = (uint16_t)((has_rval ? F_RVAL : 0) | (t->pyflags & (F_PY_ENTRY | F_PY_EXIT | F_PY_STACK)) |
                           (t->ours ? F_OURS : 0) | (t->truncated ? F_TRUNCATED : 0));
    r.h.tid = t->tid;
    r.h.tgid = t->tgid;
    r.nr = t->nr;
    memcpy(r.args, t->args, sizeof r.args);
    r.rval = rval;
    r.t0 = t->t0;
    r.t1 = t1;
    r.seq0 = t->seq0;
    r.seq1 = ++L->seq;
    r.ip = t->ip;
    r.sp = t->sp;
    r.caller = t->caller;
    r.nblobs = t->nblobs;
    t->in_call = 0;
    int rc = ring_put(L, &r, sizeof r, t->scratch, t->slen);
    t->slen = 0;
    t->nblobs = 0;
    t->truncated = 0;
    return rc;
}

static int emit_exit(Loop *L, int tgid, uint64_t t, int status, int has_status) {
    rec_exit r = {{0, R_EXIT, 0, tgid, tgid}, t, ++L->seq, status, has_status};
    return ring_put(L, &r, sizeof r, NULL, 0);
}

/* A thread of a recorded process ended (strace prints a line per thread). */
static int emit_thread_exit(Loop *L, int tid, int tgid, uint64_t t, int flags, int status) {
    proc *p = proc_get(L, tgid);
    if (!(p && p->recorded)) return 0;
    rec_exit r = {{0, R_EXIT, (uint16_t)flags, tid, tgid}, t, ++L->seq, status, 1};
    return ring_put(L, &r, sizeof r, NULL, 0);
}

static int emit_exec(Loop *L, int tid, int tgid, int caller, uint64_t t) {
    char path[64];
    size_t cap = L->rsize / 4 - sizeof(rec_exec);
    char *buf = malloc(cap);
    if (!buf) return 0;
    snprintf(path, sizeof path, "/proc/%d/exe", tid);
    ssize_t pl = readlink(path, buf, cap > 4096 ? 4096 : cap);
    if (pl < 0) { free(buf); return 0; } /* gone already: like the Python loop, no exec event */
    snprintf(path, sizeof path, "/proc/%d/cmdline", tid);
    size_t al = read_file(path, buf + pl, cap - (size_t)pl);
    rec_exec r = {{0, R_EXEC, 0, tid, tgid}, t, ++L->seq, caller, (uint32_t)pl, (uint32_t)al, 0};
    int rc = ring_put(L, &r, sizeof r, buf, (size_t)pl + al);
    free(buf);
    return rc;
}

/* A tracee exited or was killed. */
static int gone(Loop *L, int tid, int status, uint64_t now) {
    thr *t = thr_get(L, tid);
    int tgid = t ? t->tgid : 0;
    if (t && t->in_call) {
        /* exit/exit_group (or a call cut short by a fatal signal) never return */
        if (emit_syscall(L, t, 0, 0, now) < 0) return -1;
    }
    if (t && tid != tgid && emit_thread_exit(L, tid, tgid, now, X_THREAD, status) < 0) return -1;
    forget(L, tid);
    if (tid == L->root_pid && !L->attached) {
        L->root_status = status;
        L->have_root_status = 1;
    }
    if (tgid && tid == tgid) {
        for (thr *o = L->live.next, *n; o != &L->live; o = n) {
            n = o->next;
            if (o->tgid == tgid) thr_free(L, o);
        }
        proc *p = proc_get(L, tgid);
        int recorded = p && p->recorded;
        if (p) { L->proc_of[tgid] = NULL; free(p); }
        if (!recorded) return 0;
        if (emit_exit(L, tgid, now, status, 1) < 0) return -1;
        if (L->hook_source && call_hook(L, H_GONE, NULL, tgid, 0) < 0) return -1;
    }
    return 0;
}

static void check_seccomp(Loop *L) {
    int fd = L->seccomp_fd;
    L->seccomp_fd = -1;
    unsigned char b = 0xff;
    ssize_t n = read(fd, &b, 1);
    close(fd);
    if (n == 1 && b == 0) return;
    L->seccomp_mode = 0;
    L->seccomp_failed_errno = n == 1 ? b : 0;
}

static int on_event(Loop *L, int tid, int event, int sig, uint64_t now) {
    thr *t = thr_get(L, tid);
    if (!t) {
        if (adopt(L, tid, now, 0) < 0) return -1;
        t = thr_get(L, tid);
    }
    if (event == EV_FORK || event == EV_VFORK || event == EV_CLONE) {
        unsigned long child = 0;
        if (ptrace(PTRACE_GETEVENTMSG, tid, 0, &child) == -1) child = 0;
        if (child && !thr_get(L, (int)child) && t) {
            int ptgid = t->tgid;
            if (event == EV_CLONE) {
                int ctgid, ppid;
                proc_ids((int)child, &ctgid, &ppid);
                if (ctgid == ptgid) thr_new(L, (int)child, ptgid);
                else if (add(L, (int)child, ctgid ? ctgid : (int)child, ptgid, now, 0) < 0)
                    return -1;
            } else if (add(L, (int)child, (int)child, ptgid, now, 0) < 0) {
                return -1;
            }
        }
    } else if (event == EV_EXEC && t) {
        int tgid = t->tgid;
        unsigned long former = 0;
        if (ptrace(PTRACE_GETEVENTMSG, tid, 0, &former) == -1) former = 0;
        int caller = tid;
        if (former && (int)former != tid) {
            /* A non-leader thread exec'd: it now carries the leader's tid and the other
             * threads are gone. Its pending call moves over, remembering who made it. */
            thr *f = thr_get(L, (int)former);
            caller = (int)former;
            /* The leader's own pending call never returns, and the leader thread is gone:
             * strace's "= ?" and "+++ superseded by execve in pid N +++". */
            if (t->in_call && emit_syscall(L, t, 0, 0, now) < 0) return -1;
            if (emit_thread_exit(L, tid, tgid, now, X_THREAD | X_SUPERSEDED, (int)former) < 0)
                return -1;
            if (f && f->in_call) {
                char *s = t->scratch;
                size_t cap = t->scap;
                thr keep = *t;
                *t = *f;
                t->tid = keep.tid;
                t->prev = keep.prev;
                t->next = keep.next;
                t->scratch = f->scratch;
                f->scratch = s;
                f->scap = cap;
                t->caller = (int)former;
            } else {
                t->in_call = 0;
                t->slen = 0;
                t->nblobs = 0;
            }
            for (thr *o = L->live.next, *n; o != &L->live; o = n) {
                n = o->next;
                if (o->tgid != tgid || o == t) continue;
                /* the exec ended the other threads mid-call: their calls never return */
                if (o != f && o->in_call && emit_syscall(L, o, 0, 0, now) < 0) return -1;
                thr_free(L, o);
            }
        }
        t->pre_exec = 0;
        proc *p = proc_get(L, tgid);
        if (!(p && p->recorded)) {
            resume(L, t, tid, 0);
            return 0;
        }
        p->sgen = ++L->sites.next_gen;
        if (L->hook_source && call_hook(L, H_EXEC, NULL, tgid, 0) < 0) return -1;
        if (L->seccomp_fd >= 0) check_seccomp(L);
        if (emit_exec(L, tid, tgid, caller, now) < 0) return -1;
    } else if (event == EV_STOP) {
        if (L->detaching) { do_detach(L, tid, 0); return 0; }
        if (sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU) {
            /* group-stop under PTRACE_SEIZE: stay stopped without swallowing SIGCONT */
            preq(L, PTRACE_LISTEN, tid, 0);
            return 0;
        }
    }
    if (L->detaching) { do_detach(L, tid, 0); return 0; }
    resume(L, thr_get(L, tid), tid, 0);
    return 0;
}

static int on_syscall_stop(Loop *L, int tid, uint64_t now) {
    thr *t = thr_get(L, tid);
    struct ptrace_syscall_info_x si;
    if (ptrace(PTRACE_GET_SYSCALL_INFO, tid, sizeof si, &si) <= 0) {
        if (errno != ESRCH) L->ptrace_errors++;
        return 0;
    }
    if (!t) {
        if (adopt(L, tid, now, 0) < 0) return -1;
        t = thr_get(L, tid);
        if (!t) return 0;
    }
    if (si.op == OP_EXIT) {
        if (t->in_call) {
            int64_t rval = si.u.exit.rval;
            if (t->nr >= 0 && t->nr < L->nplans) {
                /* plans read what a successful call wrote; a Python capture also runs for a
                 * failed one (the decoder marks such syscalls Python-side) */
                int failed = rval < 0 && rval > -4096;
                const plan_side *ps = &L->exit_plan[t->nr];
                if (ps->n && !failed) run_plan(L, t, ps, 1, rval);
                if (ps->py) {
                    t->pyflags |= F_PY_EXIT;
                    if (call_hook(L, H_EXIT, t, t->tgid, rval) < 0) return -1;
                }
            }
            if (emit_syscall(L, t, 1, rval, now) < 0) return -1;
        }
        /* seccomp mode: run freely until the next filtered syscall */
        preq(L, L->seccomp_mode ? PTRACE_CONT : PTRACE_SYSCALL, tid, 0);
        return 0;
    }
    int64_t nr = (int64_t)si.u.entry.nr;
    int ours = 0; /* the execve sysspan's own child makes: no user stack to capture */
    if (t->pre_exec) {
        if (!bit(L->execve, nr)) { resume(L, t, tid, 0); return 0; }
        t->pre_exec = 0;
        ours = 1;
    }
    proc *p = proc_get(L, t->tgid);
    if ((L->all_traced || bit(L->traced, nr)) && p && p->recorded) {
        t->in_call = 1;
        t->nr = nr;
        memcpy(t->args, si.u.entry.args, sizeof t->args);
        t->t0 = now;
        t->seq0 = ++L->seq;
        t->ip = si.ip;
        t->sp = si.sp;
        t->ours = ours;
        t->caller = tid;
        t->pyflags = 0;
        t->slen = 0;
        t->nblobs = 0;
        t->truncated = 0;
        int py = 0;
        if (nr >= 0 && nr < L->nplans) {
            const plan_side *ps = &L->entry_plan[nr];
            if (ps->n && L->site_fast && !ours && p)
                L->pre = (site_pre){site_first_word(&L->sites, t->tgid, p->sgen, t->ip, t->sp), 0, {0}};
            if (ps->n) run_plan(L, t, ps, 0, 0);
            if (ps->py) { py = 1; t->pyflags |= F_PY_ENTRY; }
        }
        if (L->hook_source && !ours && !(L->site_fast && site_blob(L, t, p))) {
            py = 1;
            t->pyflags |= F_PY_STACK;
        }
        if (py && call_hook(L, H_ENTRY, t, t->tgid, 0) < 0) return -1;
        preq(L, PTRACE_SYSCALL, tid, 0); /* always stop at this call's exit */
    } else {
        resume(L, t, tid, 0);
    }
    return 0;
}

static int on_signal(Loop *L, int tid, int sig, uint64_t now) {
    if (L->detaching) { do_detach(L, tid, sig); return 0; }
    thr *t = thr_get(L, tid);
    if (!t) {
        if (adopt(L, tid, now, 0) < 0) return -1;
        t = thr_get(L, tid);
    }
    if (t && !t->pre_exec) {
        proc *p = proc_get(L, t->tgid);
        if (p && p->recorded) {
            siginfo_t info;
            rec_signal r;
            memset(&r, 0, sizeof r);
            r.h.kind = R_SIGNAL;
            r.h.tid = tid;
            r.h.tgid = t->tgid;
            r.t = now;
            r.seq = ++L->seq;
            r.sig = sig;
            if (ptrace(PTRACE_GETSIGINFO, tid, 0, &info) != -1) {
                r.has_info = 1;
                r.code = info.si_code;
                r.spid = info.si_pid;
                r.suid = info.si_uid;
                if (sig == SIGCHLD) {
                    r.status = info.si_status;
                    r.utime = (int64_t)info.si_utime;
                    r.stime = (int64_t)info.si_stime;
                }
            }
            if (ring_put(L, &r, sizeof r, NULL, 0) < 0) return -1;
        }
    }
    resume(L, t, tid, sig);
    return 0;
}

/* ---- Python methods ---------------------------------------------------------------------- */
static int parse_plans(Loop *L, PyObject *plans) {
    /* plans: list indexed by nr of None or (entry_ops, entry_py, exit_ops, exit_py), each op
     * a tuple (arg, op, cap, len_arg, flags, mult, cond_arg, cond_val). */
    Py_ssize_t n = PyList_Size(plans);
    if (n < 0) return -1;
    L->nplans = (int)n;
    L->entry_plan = calloc((size_t)n + 1, sizeof(plan_side));
    L->exit_plan = calloc((size_t)n + 1, sizeof(plan_side));
    if (!L->entry_plan || !L->exit_plan) { PyErr_NoMemory(); return -1; }
    for (Py_ssize_t nr = 0; nr < n; nr++) {
        PyObject *item = PyList_GET_ITEM(plans, nr);
        if (item == Py_None) continue;
        PyObject *eops, *xops;
        int epy, xpy;
        if (!PyArg_ParseTuple(item, "OpOp", &eops, &epy, &xops, &xpy)) return -1;
        for (int side = 0; side < 2; side++) {
            PyObject *ops = side ? xops : eops;
            plan_side *ps = side ? &L->exit_plan[nr] : &L->entry_plan[nr];
            ps->py = side ? xpy : epy;
            Py_ssize_t k = PyTuple_Size(ops);
            if (k < 0) return -1;
            if (!k) continue;
            ps->ops = calloc((size_t)k, sizeof(plan_op));
            if (!ps->ops) { PyErr_NoMemory(); return -1; }
            ps->n = (int)k;
            for (Py_ssize_t j = 0; j < k; j++) {
                int arg, op, len_arg, flags, cond_arg;
                unsigned int mult;
                unsigned long long cap, cond_val;
                if (!PyArg_ParseTuple(PyTuple_GET_ITEM(ops, j), "iiKiiIiK", &arg, &op, &cap,
                                      &len_arg, &flags, &mult, &cond_arg, &cond_val))
                    return -1;
                if (arg < 0 || arg > 5 || len_arg > 5 || cond_arg > 5) {
                    PyErr_SetString(PyExc_ValueError, "plan: argument index out of range");
                    return -1;
                }
                plan_op *o = &ps->ops[j];
                o->arg = (int8_t)arg;
                o->op = (int8_t)op;
                o->cap = cap;
                o->len_arg = (int8_t)len_arg;
                o->flags = (int8_t)flags;
                o->mult = mult;
                o->cond_arg = (int8_t)cond_arg;
                o->cond_val = cond_val;
            }
        }
    }
    return 0;
}

static int fill_set(uint8_t *set, PyObject *nrs) {
    PyObject *it = PyObject_GetIter(nrs);
    if (!it) return -1;
    PyObject *x;
    while ((x = PyIter_Next(it))) {
        long v = PyLong_AsLong(x);
        Py_DECREF(x);
        if (v == -1 && PyErr_Occurred()) { Py_DECREF(it); return -1; }
        if (v >= 0 && v < 4096) set[v >> 3] |= (uint8_t)(1 << (v & 7));
    }
    Py_DECREF(it);
    return PyErr_Occurred() ? -1 : 0;
}

static int Loop_init(Loop *L, PyObject *args, PyObject *kw) {
    static char *names[] = {"ring_bytes", "options", "follow", "traced", "execve_nrs", "plans",
                            "hook", "hook_source", "seccomp_fd", NULL};
    Py_ssize_t ring_bytes = 0;
    long options = 0;
    int follow = 0, hook_source = 0, seccomp_fd = -1;
    PyObject *traced, *execve, *plans, *hook;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "nlpOOOOpi", names, &ring_bytes, &options,
                                     &follow, &traced, &execve, &plans, &hook, &hook_source,
                                     &seccomp_fd))
        return -1;
    if (ring_bytes < 65536) {
        PyErr_SetString(PyExc_ValueError, "ring_bytes: at least 65536");
        return -1;
    }
    L->rsize = (uint64_t)ring_bytes & ~(uint64_t)7;
    L->ring = malloc(L->rsize);
    L->options = options;
    L->follow = follow;
    L->record_all = follow;
    L->seccomp_fd = seccomp_fd;
    L->seccomp_mode = seccomp_fd >= 0;
    L->seccomp_failed_errno = -1;
    L->all_traced = traced == Py_None;
    if (!L->all_traced && fill_set(L->traced, traced) < 0) return -1;
    if (fill_set(L->execve, execve) < 0) return -1;
    if (parse_plans(L, plans) < 0) return -1;
    if (hook != Py_None) { Py_INCREF(hook); L->hook = hook; }
    L->hook_source = hook_source && L->hook;
    L->pid_max = 4194304;
    char buf[32] = {0};
    if (read_file("/proc/sys/kernel/pid_max", buf, sizeof buf - 1) > 0 && atoi(buf) > 0)
        L->pid_max = atoi(buf) + 1;
    /* indexed by pid: calloc maps zero pages, only the pages of pids seen cost memory */
    L->thr_of = calloc((size_t)L->pid_max, sizeof(thr *));
    L->proc_of = calloc((size_t)L->pid_max, sizeof(proc *));
    if (!L->ring || !L->thr_of || !L->proc_of) { PyErr_NoMemory(); return -1; }
    L->live.next = L->live.prev = &L->live;
    pthread_mutex_init(&L->mu, NULL);
    pthread_cond_init(&L->cv_data, NULL);
    pthread_cond_init(&L->cv_space, NULL);
    return 0;
}

static void Loop_dealloc(Loop *L) {
    if (L->live.next) {
        while (L->live.next != &L->live) thr_free(L, L->live.next);
    }
    if (L->proc_of) {
        for (int i = 0; i < L->pid_max; i++) free(L->proc_of[i]);
    }
    for (int i = 0; i < L->nplans; i++) {
        if (L->entry_plan) free(L->entry_plan[i].ops);
        if (L->exit_plan) free(L->exit_plan[i].ops);
    }
    free(L->entry_plan);
    free(L->exit_plan);
    free(L->thr_of);
    free(L->proc_of);
    free(L->ring);
    free(L->sites.slots);
    Py_XDECREF(L->hook);
    Py_TYPE(L)->tp_free((PyObject *)L);
}

static PyObject *os_error(int err, const char *what, int pid) {
    errno = err;
    char msg[96];
    snprintf(msg, sizeof msg, "%s(%d)", what, pid);
    return PyErr_SetFromErrnoWithFilename(PyExc_OSError, msg);
}

/* spawned(pid, t): seize the stopped child (with PTRACE_O_EXITKILL), register it, and
 * continue it towards its exec. */
static PyObject *Loop_spawned(Loop *L, PyObject *args) {
    int pid;
    unsigned long long t;
    if (!PyArg_ParseTuple(args, "iK", &pid, &t)) return NULL;
    if (ptrace(PTRACE_SEIZE, pid, 0, L->options | 0x100000) == -1)
        return os_error(errno, "PTRACE_SEIZE", pid);
    L->root_pid = pid;
    if (add(L, pid, pid, getpid(), t, 0) < 0) return NULL;
    thr_get(L, pid)->pre_exec = 1;
    kill(pid, SIGCONT);
    Py_RETURN_NONE;
}

/* attach(pid, parent, t): seize every thread of pid until no new ones appear. */
static PyObject *Loop_attach(Loop *L, PyObject *args) {
    int pid, parent;
    unsigned long long t;
    if (!PyArg_ParseTuple(args, "iiK", &pid, &parent, &t)) return NULL;
    L->attached = 1;
    L->root_pid = pid;
    PyObject *listdir = NULL, *seen = PySet_New(NULL);
    if (!seen) return NULL;
    PyObject *os = PyImport_ImportModule("os");
    if (!os) goto fail;
    listdir = PyObject_GetAttrString(os, "listdir");
    Py_DECREF(os);
    if (!listdir) goto fail;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", pid);
    int first = 1;
    for (;;) {
        PyObject *names = PyObject_CallFunction(listdir, "s", path);
        if (!names) goto fail;
        Py_ssize_t n = PyList_Size(names);
        /* leader first, then the others in order */
        long *tids = calloc((size_t)n + 1, sizeof(long));
        Py_ssize_t m = 0;
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *num = PyLong_FromUnicodeObject(PyList_GET_ITEM(names, i), 10);
            if (!num) { Py_DECREF(names); free(tids); goto fail; }
            int has = PySet_Contains(seen, num);
            if (!has) { PySet_Add(seen, num); tids[m++] = PyLong_AsLong(num); }
            Py_DECREF(num);
        }
        Py_DECREF(names);
        for (Py_ssize_t i = 1; i < m; i++) /* insertion sort: a handful of threads */
            for (Py_ssize_t j = i; j > 0 && tids[j - 1] > tids[j]; j--) {
                long x = tids[j]; tids[j] = tids[j - 1]; tids[j - 1] = x;
            }
        for (Py_ssize_t i = 0; i < m; i++) {
            int tid = (int)tids[i];
            if (ptrace(PTRACE_SEIZE, tid, 0, L->options) == -1) {
                int err = errno;
                if (err == ESRCH && tid != pid) continue;
                if (first) {
                    free(tids);
                    os_error(err, "PTRACE_SEIZE", tid);
                    goto fail;
                }
                continue;
            }
            if (first) {
                if (add(L, tid, pid, parent, t, 1) < 0) { free(tids); goto fail; }
                first = 0;
            } else {
                thr_new(L, tid, pid);
            }
            ptrace(PTRACE_INTERRUPT, tid, 0, 0);
        }
        free(tids);
        if (!m) break;
    }
    Py_DECREF(listdir);
    Py_DECREF(seen);
    if (emit_exec(L, pid, pid, pid, t) < 0) return NULL;
    Py_RETURN_NONE;
fail:
    Py_XDECREF(listdir);
    Py_DECREF(seen);
    return NULL;
}

static PyObject *Loop_run(Loop *L, PyObject *unused) {
    int failed = 0;
    L->running = 1;
    gil_drop(L);
    while (L->nlive > 0) {
        int status;
        int tid = waitpid(-1, &status, __WALL);
        if (tid < 0) {
            if (errno == EINTR) {
                gil_take(L);
                int bad = PyErr_CheckSignals();
                gil_drop(L);
                if (bad) { failed = 1; break; }
                continue;
            }
            break; /* ECHILD: nobody left */
        }
        uint64_t now = now_ns();
        L->stops++;
        int rc = 0;
        if (!WIFSTOPPED(status)) {
            rc = gone(L, tid, status, now);
        } else {
            int sig = WSTOPSIG(status);
            int event = status >> 16;
            if (sig == (SIGTRAP | 0x80) || event == EV_SECCOMP) {
                if (L->detaching) do_detach(L, tid, 0);
                else rc = on_syscall_stop(L, tid, now);
            } else if (event) {
                rc = on_event(L, tid, event, sig, now);
            } else {
                rc = on_signal(L, tid, sig, now);
            }
        }
        if (rc < 0) { failed = 1; break; }
    }
    pthread_mutex_lock(&L->mu);
    L->finished = 1;
    pthread_cond_broadcast(&L->cv_data);
    pthread_mutex_unlock(&L->mu);
    gil_take(L);
    L->running = 0;
    if (failed) return NULL;
    if (L->have_root_status) return PyLong_FromLong(L->root_status);
    Py_RETURN_NONE;
}

/* drain(): the next run of whole records as bytes; blocks (without the GIL) until there are
 * some; None once the loop has finished and everything was handed out. */
static PyObject *Loop_drain(Loop *L, PyObject *unused) {
    char *copy = NULL;
    size_t n = 0;
    int done = 0;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&L->mu);
    for (;;) {
        /* skip padding at the end of the ring */
        while (L->head != L->tail) {
            rec_hdr *h = (rec_hdr *)(L->ring + L->tail % L->rsize);
            if (h->kind != R_PAD) break;
            L->tail += h->size;
        }
        if (L->head != L->tail) break;
        if (L->finished) { done = 1; break; }
        pthread_cond_signal(&L->cv_space);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += DRAIN_POLL_NS;
        if (until.tv_nsec >= 1000000000) { until.tv_sec++; until.tv_nsec -= 1000000000; }
        pthread_cond_timedwait(&L->cv_data, &L->mu, &until);
    }
    if (!done) {
        uint64_t pos = L->tail % L->rsize;
        uint64_t avail = L->head - L->tail;
        n = (size_t)(avail < L->rsize - pos ? avail : L->rsize - pos);
        /* hand out a bounded run: the consumer turns each into Python objects at once */
        if (n > DRAIN_MAX_BYTES) n = DRAIN_MAX_BYTES;
        /* whole records only, and stop before a pad record */
        size_t k = 0;
        while (k < n) {
            rec_hdr *h = (rec_hdr *)(L->ring + pos + k);
            if (h->kind == R_PAD || k + h->size > n) break;
            k += h->size;
        }
        if (k == 0 && n) { /* one record larger than DRAIN_MAX_BYTES: hand it out alone */
            k = ((rec_hdr *)(L->ring + pos))->size;
        }
        n = k;
        copy = malloc(n ? n : 1);
        if (copy) {
            memcpy(copy, L->ring + pos, n);
            L->tail += n;
        }
        pthread_cond_signal(&L->cv_space);
    }
    pthread_mutex_unlock(&L->mu);
    Py_END_ALLOW_THREADS
    if (done) Py_RETURN_NONE;
    if (!copy) return PyErr_NoMemory();
    PyObject *out = PyBytes_FromStringAndSize(copy, (Py_ssize_t)n);
    free(copy);
    return out;
}

/* abandon(): the consumer stopped (an exception in it): never block on it again. */
static PyObject *Loop_abandon(Loop *L, PyObject *unused) {
    pthread_mutex_lock(&L->mu);
    L->consumer_gone = 1;
    L->tail = L->head;
    pthread_cond_broadcast(&L->cv_space);
    pthread_mutex_unlock(&L->mu);
    Py_RETURN_NONE;
}

/* finish(): no run() will come (an error before it): let drain() return None. */
static PyObject *Loop_finish(Loop *L, PyObject *unused) {
    pthread_mutex_lock(&L->mu);
    L->finished = 1;
    pthread_cond_broadcast(&L->cv_data);
    pthread_mutex_unlock(&L->mu);
    Py_RETURN_NONE;
}

static PyObject *Loop_request_detach(Loop *L, PyObject *unused) {
    L->detaching = 1;
    for (thr *t = L->live.next; t != &L->live; t = t->next) ptrace(PTRACE_INTERRUPT, t->tid, 0, 0);
    Py_RETURN_NONE;
}

static PyObject *Loop_forward(Loop *L, PyObject *args) {
    int sig;
    if (!PyArg_ParseTuple(args, "i", &sig)) return NULL;
    if (L->root_pid && !L->have_root_status) kill(L->root_pid, sig);
    Py_RETURN_NONE;
}

/* answer_sites(syscall_insn, ra_mask): from now on answer the --source sites
 * taught (learn_rules) without calling the hook (see _sites.h). */
static PyObject *Loop_answer_sites(Loop *L, PyObject *args) {
    unsigned long long insn, mask;
    if (!PyArg_ParseTuple(args, "KK", &insn, &mask)) return NULL;
    L->sites.insn = insn;
    L->sites.ra_mask = mask;
    L->site_fast = L->hook_source;
    Py_RETURN_NONE;
}

/* learn_rules(tgid, facts, bias, lo, hi), from the hook: in tgid's current image, the rules
 * (site_fact, packed; see _sites.h) of the code at each fact's address plus bias, for the
 * addresses in [lo, hi) (the mapping the facts of a file are for). Returns how many times
 * the table was emptied so far: when that changed, what was taught before may be gone. */
static PyObject *Loop_learn_rules(Loop *L, PyObject *args) {
    int tgid;
    Py_buffer buf;
    unsigned long long bias = 0, lo = 0, hi = UINT64_MAX;
    if (!PyArg_ParseTuple(args, "iy*|KKK", &tgid, &buf, &bias, &lo, &hi)) return NULL;
    PyObject *res = Py_None;
    proc *p = proc_get(L, tgid);
    if (buf.len % (Py_ssize_t)sizeof(site_fact)) {
        PyErr_SetString(PyExc_ValueError, "learn_rules: facts are whole 24-byte records");
        res = NULL;
    }
    for (Py_ssize_t i = 0; res && p && i < buf.len / (Py_ssize_t)sizeof(site_fact); i++) {
        site_fact f;
        memcpy(&f, (const char *)buf.buf + i * (Py_ssize_t)sizeof f, sizeof f);
        if (!site_fact_ok(&f)) {
            PyErr_SetString(PyExc_ValueError, "learn_rules: a fact of an unknown kind");
            res = NULL;
            break;
        }
        uint64_t a = f.addr + bias;
        if (a < lo || a >= hi) continue;
        int rc = 0;
        if (f.kind & S_TOP) rc = site_learn(&L->sites, tgid, p->sgen, a, S_TOP, &f);
        if (!rc && (f.kind & S_RET))
            rc = site_learn(&L->sites, tgid, p->sgen, f.kind == S_BOTH ? a + 1 : a, S_RET, &f);
        if (rc < 0) {
            PyErr_NoMemory();
            res = NULL;
        }
    }
    PyBuffer_Release(&buf);
    return res ? PyLong_FromUnsignedLongLong(L->sites.epoch) : NULL;
}

static PyObject *Loop_stats(Loop *L, PyObject *unused) {
    return Py_BuildValue(
        "{sKsKsKsKsKsKsisisisKsK}", "stops", (unsigned long long)L->stops, "ring_peak",
        (unsigned long long)L->peak, "ring_waits", (unsigned long long)L->waits, "lost",
        (unsigned long long)L->lost, "ptrace_errors", (unsigned long long)L->ptrace_errors,
        "ring_bytes", (unsigned long long)L->rsize, "seccomp_mode", L->seccomp_mode,
        "seccomp_failed_errno", L->seccomp_failed_errno, "detaching", L->detaching,
        "sites_answered", (unsigned long long)L->sites.answered, "sites_prefetched",
        (unsigned long long)L->sites.prefetched);
}

/* read_mem(pid, addr, size) / read_cstr(pid, addr, limit): tracee memory for the Python
 * side of a stop (the hook), the same reads the plans make. */
static PyObject *mod_read_mem(PyObject *m, PyObject *args) {
    int pid;
    unsigned long long addr;
    Py_ssize_t size;
    if (!PyArg_ParseTuple(args, "iKn", &pid, &addr, &size)) return NULL;
    if (size <= 0 || !addr) return PyBytes_FromStringAndSize("", 0);
    PyObject *out = PyBytes_FromStringAndSize(NULL, size);
    if (!out) return NULL;
    ssize_t got;
    Py_BEGIN_ALLOW_THREADS
    got = mem_read(pid, addr, PyBytes_AS_STRING(out), (size_t)size);
    Py_END_ALLOW_THREADS
    if (got < size) _PyBytes_Resize(&out, got);
    return out;
}

static PyObject *mod_read_cstr(PyObject *m, PyObject *args) {
    int pid;
    unsigned long long addr;
    Py_ssize_t limit;
    if (!PyArg_ParseTuple(args, "iKn", &pid, &addr, &limit)) return NULL;
    if (!addr) Py_RETURN_NONE;
    char *buf = malloc(limit > 0 ? (size_t)limit : 1);
    if (!buf) return PyErr_NoMemory();
    int fault;
    size_t have;
    Py_BEGIN_ALLOW_THREADS
    have = cstr_read(pid, addr, buf, (size_t)(limit > 0 ? limit : 0), &fault);
    Py_END_ALLOW_THREADS
    PyObject *out = (fault && !have) ? (Py_INCREF(Py_None), Py_None)
                                     : PyBytes_FromStringAndSize(buf, (Py_ssize_t)have);
    free(buf);
    return out;
}

/* PTRACE_GETREGSET(NT_PRSTATUS) for --source/-k stack capture, here so that capture needs no
 * ctypes (whose import was a millisecond of every --source run's start-up). */
static PyObject *mod_getregs(PyObject *m, PyObject *args) {
    int tid;
    Py_ssize_t words;
    if (!PyArg_ParseTuple(args, "in", &tid, &words)) return NULL;
    if (words <= 0 || words > 64) {
        PyErr_SetString(PyExc_ValueError, "getregs: words must be 1..64");
        return NULL;
    }
    uint64_t regs[64];
    struct iovec iov = {regs, (size_t)words * 8};
    if (ptrace(PTRACE_GETREGSET, tid, (void *)1 /* NT_PRSTATUS */, &iov) == -1 ||
        iov.iov_len < (size_t)words * 8)
        Py_RETURN_NONE;
    PyObject *out = PyTuple_New(words);
    if (!out) return NULL;
    for (Py_ssize_t i = 0; i < words; i++) {
        PyObject *v = PyLong_FromUnsignedLongLong(regs[i]);
        if (!v) {
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, i, v);
    }
    return out;
}

static PyMethodDef module_methods[] = {
    {"getregs", mod_getregs, METH_VARARGS, "a stopped thread's general registers, None on failure"},
    {"read_mem", mod_read_mem, METH_VARARGS, "up to size bytes of tracee memory"},
    {"read_cstr", mod_read_cstr, METH_VARARGS, "a NUL-terminated string, None on fault"},
    RECORDS_METHODS,
    {NULL, NULL, 0, NULL},
};

static PyMethodDef Loop_methods[] = {
    {"spawned", (PyCFunction)Loop_spawned, METH_VARARGS, "seize the stopped child pid"},
    {"attach", (PyCFunction)Loop_attach, METH_VARARGS, "seize every thread of pid"},
    {"run", (PyCFunction)Loop_run, METH_NOARGS, "trace until no tracee is left"},
    {"drain", (PyCFunction)Loop_drain, METH_NOARGS, "the next records (bytes) or None"},
    {"abandon", (PyCFunction)Loop_abandon, METH_NOARGS, "the consumer is gone"},
    {"finish", (PyCFunction)Loop_finish, METH_NOARGS, "end the record stream without run()"},
    {"request_detach", (PyCFunction)Loop_request_detach, METH_NOARGS, "detach at next stops"},
    {"forward", (PyCFunction)Loop_forward, METH_VARARGS, "send a signal to the root"},
    {"stats", (PyCFunction)Loop_stats, METH_NOARGS, "counters"},
    {"answer_sites", (PyCFunction)Loop_answer_sites, METH_VARARGS, "answer taught --source sites"},
    {"learn_rules", (PyCFunction)Loop_learn_rules, METH_VARARGS, "teach --source unwind rules"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject LoopType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sysspan.collector._stoploop.Loop",
    .tp_basicsize = sizeof(Loop),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The compiled ptrace stop loop.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Loop_init,
    .tp_dealloc = (destructor)Loop_dealloc,
    .tp_methods = Loop_methods,
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_stoploop", "The compiled ptrace stop loop.", -1, module_methods,
};

PyMODINIT_FUNC PyInit__stoploop(void) {
    if (PyType_Ready(&LoopType) < 0) return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (!m) return NULL;
    Py_INCREF(&LoopType);
    if (PyModule_AddObject(m, "Loop", (PyObject *)&LoopType) < 0) return NULL;
    return m;
}
