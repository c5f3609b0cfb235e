// SPDX-License-Identifier: GPL-2.0
/* The kernel side of --backend ebpf (compiled with clang at build time, loaded by _bpf.c).
 *
 * It writes the same binary records as the ptrace stop loop (layout: records.py and
 * _stoploop.c) into one BPF ring buffer, so the Python side parses them with the same code.
 * A ring buffer, not a perf buffer per CPU: the records of all CPUs come out in the order
 * they were written and the consumer is not woken per record (BPF_RB_NO_WAKEUP; it polls).
 *
 * Filtering happens here: only threads of the traced process tree (a map of tgids that
 * task_newtask fills when following children) and only the syscalls whose tracepoints
 * user space attached these programs to (all syscalls: raw_syscalls; a -e trace= set: fentry/
 * fexit on the selected syscalls' kernel functions, or their per-syscall tracepoints where
 * fentry is unavailable).
 *
 * Why fentry for a selection: once any syscall tracepoint is enabled the kernel sends every
 * syscall of every task through the slow tracing entry and exit path, selected or not. A BPF
 * trampoline on __x64_sys_openat costs nothing to the other syscalls.
 *
 * Argument memory is read at the syscall's exit, where the kernel has just touched it (a
 * tracepoint program cannot fault pages in), following the decoder's read plans that user
 * space put in the plans map. execve's path and argv are read at entry (the old image is
 * gone at exit) and sent ahead as an entry-only record.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

enum { R_SYSCALL = 1, R_START = 2, R_EXEC = 3, R_SIGNAL = 4, R_EXIT = 5 };
enum { F_RVAL = 1, F_ENTRY_ONLY = 64 };
enum { P_MEM = 0, P_CSTR = 1 };
enum { PF_RVAL = 1, PF_U32LEN = 2 };
#define CLONE_THREAD 0x10000
#define MAX_READS 6
#define PLANS_MAX 1024
#define READ_MAX 4096 /* longest single read; a longer string shows as its address */
#define ARGV_ITEMS 64
#define ARGV_STR_MAX 1024
/* Records stay below RECORD_MAX; positions are masked to 8 KiB for the verifier, and one read
 * is at most 8 KiB (masked) past one. */
#define RECORD_MAX 8192
#define SCRATCH (3 * 8192)
#define EXEC_DATA_MAX 4096
#define EFAULT_ 14
/* fentry/fexit program pairs, one per selected syscall (a trampoline program is loaded for one
 * kernel function); a larger selection uses tracepoints for the rest */
#define FENTRY_SLOTS 32

#include "records.h"

struct ss_plan_op {
    s8 arg, op, len_arg, flags, cond_arg, at_exit;
    u8 pad[2];
    u32 mult, cap;
    u64 cond_val;
};

struct ss_plan {
    u32 n, nargs;
    struct ss_plan_op ops[8]; /* MAX_READS used; 8 so that an index masked to 7 fits */
};

struct ss_config {
    u64 offset;      /* CLOCK_REALTIME - CLOCK_MONOTONIC: records carry epoch times */
    u32 root;        /* the traced tgid (or tid with thread_only) */
    u32 follow;      /* add new processes of traced ones to the traced map */
    u32 thread_only; /* only the root's first thread (ptrace without -f) */
    u32 execve_nr, execveat_nr;
    u32 wake_at; /* wake the reader once the ring holds this many bytes (0: it polls) */
    u32 stopped; /* the run is over: record nothing more */
};

struct ss_inflight {
    s64 nr;
    u64 args[6];
    u64 t0, seq0;
};

/* The state of a bpf_loop walk lives in the scratch map, not on the stack: the verifier
 * tracks stack values exactly, so a callback writing its position there is explored again
 * for every distinct position (~10 ms to load); values loaded from a map are just bounded
 * scalars, and the callback's states converge at once. */
struct plan_walk {
    u64 args[8]; /* 6 used; 8 so that an index masked to 7 fits */
    s64 ret;
    u32 nr, pos, nblobs, failed;
};

struct argv_walk {
    u32 arr, pos, nblobs, n;
};

struct ss_scratch {
    u8 buf[SCRATCH];
    struct plan_walk pw;
    struct argv_walk aw;
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, u32);
    __type(value, struct ss_config);
} cfg SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 65536);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, u32);
    __type(value, u8);
} traced SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1024);
    __type(key, u32);
    __type(value, struct ss_plan);
} plans SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 65536);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, u32);
    __type(value, struct ss_inflight);
} inflight SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, u32);
    __type(value, struct ss_scratch);
} scratch SEC(".maps");

/* [0]: syscalls lost, [1]: other records lost (per CPU) */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 2);
    __type(key, u32);
    __type(value, u64);
} lost SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, u32);
    __type(value, u64);
} seqno SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 1 << 24); /* user space sets the real size before loading */
} events SEC(".maps");

/* 1 once a record has woken the reader, until the reader, about to wait again, sets it back
 * to 0: one wake-up per wait, not one per record while the reader waits for the CPU */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, u32);
    __type(value, u32);
} woken SEC(".maps");

/* the syscall number of each fentry slot, set by user space */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, FENTRY_SLOTS);
    __type(key, u32);
    __type(value, u32);
} slot_nr SEC(".maps");

static const u32 ZERO = 0;

/* A bound the verifier sees: clang would otherwise merge the mask into earlier arithmetic. */
#define BOUND(v, mask) ({ u64 _v = (v); asm volatile("%0 &= " #mask : "+r"(_v)); _v; })

static __always_inline struct ss_config *get_cfg(void) {
    return bpf_map_lookup_elem(&cfg, &ZERO);
}

static __always_inline u64 next_seq(void) {
    u64 *s = bpf_map_lookup_elem(&seqno, &ZERO);
    return s ? __sync_fetch_and_add(s, 1) : 0;
}

static __always_inline int wanted(struct ss_config *c, u64 id) {
    if (c->stopped) return 0;
    if (c->thread_only) return (u32)id == c->root;
    u32 tgid = id >> 32;
    return bpf_map_lookup_elem(&traced, &tgid) != NULL;
}

static __always_inline void header(struct ss_rec_hdr *h, u32 size, u16 kind, u32 tid, u32 tgid) {
    h->size = size;
    h->kind = kind;
    h->flags = 0;
    h->tid = (s32)tid;
    h->tgid = (s32)tgid;
}

static __always_inline void count_lost(u32 which) {
    u64 *n = bpf_map_lookup_elem(&lost, &which);
    if (n) *n += 1;
}

/* Records are written without waking the reader, which either polls (a full trace: a steady
 * stream) or, for a selection (wake_at set), sleeps until the ring is that full or its
 * timeout passes: a few records a second then cost no wake-ups every few milliseconds. */
static __always_inline void emit(void *data, u64 size, u32 which) {
    if (size > SCRATCH) return;
    u64 flags = BPF_RB_NO_WAKEUP;
    struct ss_config *c = get_cfg();
    if (c && c->wake_at && bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) + size >= c->wake_at) {
        u32 *w = bpf_map_lookup_elem(&woken, &ZERO);
        if (w && !*w) {
            *w = 1;
            flags = BPF_RB_FORCE_WAKEUP;
        }
    }
    if (bpf_ringbuf_output(&events, data, size, flags) < 0) count_lost(which);
}

/* One read into the record at *pos; returns 0 when nothing was appended. */
static __always_inline int add_blob(u8 *buf, u32 *pos, u64 addr, u64 len, int cstr, int at_exit,
                                    u64 plan_cap) {
    /* one byte more than the plan's cap tells a string that did not end within it */
    u64 want = plan_cap + 1 > READ_MAX ? READ_MAX : plan_cap + 1;
    u64 room = cstr ? want : (len > READ_MAX ? READ_MAX : len);
    /* a record stays within RECORD_MAX: a read that would not fit shows as its address */
    if (*pos + sizeof(struct ss_blob_hdr) + room > RECORD_MAX) return 0;
    u64 p = BOUND(*pos, 8191);
    struct ss_blob_hdr *bh = (struct ss_blob_hdr *)(buf + p);
    u8 *data = buf + p + sizeof(*bh);
    long got;
    u8 fault = 0;
    if (cstr) {
        got = bpf_probe_read_user_str(data, BOUND(want, 8191), (void *)addr);
        if (got <= 0) return 0;
        got -= 1; /* without the NUL */
        if ((u64)got + 1 >= want) {
            if (want <= plan_cap) return 0; /* cut by our ceiling, not the plan's: an address */
            got = plan_cap;
        }
    } else {
        if (len > READ_MAX) {
            len = READ_MAX;
            fault = 1;
        }
        if (len && bpf_probe_read_user(data, BOUND(len, 8191), (void *)addr) < 0) return 0;
        got = len;
    }
    bh->addr = addr;
    bh->len = (u32)got;
    bh->at_exit = (u8)at_exit;
    bh->op = cstr ? P_CSTR : P_MEM;
    bh->fault = fault;
    bh->pad = 0;
    *pos = (u32)p + ((sizeof(*bh) + (u32)got + 7) & ~7u);
    return 1;
}

/* One read of a plan, as a global function: the verifier checks it once, for any arguments,
 * where inlined into plan_read its branches were walked again for each state the loop
 * reached (sys_exit took 0.84 ms to verify). Returns the record's new end, 0 when nothing
 * was appended. kind: 1 a string, 2 read at the syscall's exit. */
__noinline int plan_blob(u32 pos, u64 addr, u64 len, u32 kind, u64 plan_cap) {
    struct ss_scratch *s = bpf_map_lookup_elem(&scratch, &ZERO);
    if (!s) return 0;
    u32 end = pos;
    if (!add_blob(s->buf, &end, addr, len, kind & 1, (kind >> 1) & 1, plan_cap)) return 0;
    return (int)end;
}

/* Read k of a syscall's plan (a bpf_loop callback: verified once for all reads). */
static long plan_read(u32 k, void *ctx) {
    struct ss_scratch *s = bpf_map_lookup_elem(&scratch, &ZERO);
    if (!s) return 1;
    struct plan_walk *w = &s->pw;
    struct ss_plan *pl = bpf_map_lookup_elem(&plans, &w->nr);
    if (!pl || k >= MAX_READS) return 1;
    struct ss_plan_op *o = &pl->ops[BOUND(k, 7)];
    if (o->at_exit && w->failed) return 0;
    u64 addr = w->args[BOUND(o->arg, 7)];
    if (!addr) return 0;
    if (o->cond_arg >= 0 && w->args[BOUND(o->cond_arg, 7)] != o->cond_val) return 0;
    u64 len = o->cap;
    if (o->len_arg >= 0) {
        u64 v = w->args[BOUND(o->len_arg, 7)];
        if (o->flags & PF_U32LEN) v &= 0xffffffffull;
        if (v < len) len = v;
    }
    if ((o->flags & PF_RVAL) && (u64)w->ret < len) len = (u64)w->ret;
    if (o->mult) len *= o->mult;
    int end = plan_blob(w->pos, addr, len, (o->op == P_CSTR) | (o->at_exit ? 2 : 0), o->cap);
    if (end > 0) {
        w->pos = (u32)end;
        w->nblobs++;
    }
    return 0;
}

/* The finished syscall (has_rval 0: the thread ended inside it) with its plan's reads. */
static __always_inline void emit_syscall(struct ss_config *c, struct ss_inflight *e, u64 id, s64 ret,
                                         int has_rval) {
    struct ss_scratch *s = bpf_map_lookup_elem(&scratch, &ZERO);
    if (!s) return;
    struct ss_rec_syscall *r = (struct ss_rec_syscall *)s->buf;
    header(&r->h, 0, R_SYSCALL, (u32)id, id >> 32); /* its size once the reads are made */
    r->h.flags = has_rval ? F_RVAL : 0;
    r->nr = e->nr;
    r->args[0] = e->args[0];
    r->args[1] = e->args[1];
    r->args[2] = e->args[2];
    r->args[3] = e->args[3];
    r->args[4] = e->args[4];
    r->args[5] = e->args[5];
    r->rval = ret;
    r->t0 = e->t0;
    r->t1 = bpf_ktime_get_ns() + c->offset;
    r->seq0 = e->seq0;
    r->seq1 = next_seq();
    r->ip = r->sp = 0;
    r->caller = 0;
    struct plan_walk *w = &s->pw;
    w->ret = ret;
    w->nr = (u32)e->nr;
    w->pos = sizeof(*r);
    w->nblobs = 0;
    __builtin_memcpy(w->args, e->args, sizeof(e->args));
    struct ss_plan *pl = w->nr < PLANS_MAX ? bpf_map_lookup_elem(&plans, &w->nr) : NULL;
    w->failed = has_rval && ret < 0 && ret > -4096;
    if (pl && pl->n && has_rval && ret != -EFAULT_) bpf_loop(pl->n, plan_read, NULL, 0);
    u32 nblobs = w->nblobs;
    u32 pos = w->pos;
    r->nblobs = nblobs;
    r->h.size = pos;
    emit(s->buf, pos, 0);
}

/* Counts argv's pointers up to its NULL (a bpf_loop callback, like the one below). */
static long count_argv(u32 i, void *ctx) {
    struct ss_scratch *s = bpf_map_lookup_elem(&scratch, &ZERO);
    if (!s) return 1;
    struct argv_walk *w = &s->aw;
    u64 a = BOUND(w->arr + sizeof(struct ss_blob_hdr) + (u64)i * 8, 8191);
    if (!*(u64 *)(s->buf + a)) return 1;
    w->n = i + 1;
    return 0;
}

/* One argv string (a bpf_loop callback: verified once, not once per element). */
static long read_argv_item(u32 i, void *ctx) {
    struct ss_scratch *s = bpf_map_lookup_elem(&scratch, &ZERO);
    if (!s) return 1;
    struct argv_walk *w = &s->aw;
    if (w->pos > RECORD_MAX - ARGV_STR_MAX) return 1; /* full: the rest are addresses */
    u64 a = BOUND(w->arr + sizeof(struct ss_blob_hdr) + (u64)i * 8, 8191);
    u64 p = *(u64 *)(s->buf + a);
    w->nblobs += add_blob(s->buf, &w->pos, p, 0, 1, 0, ARGV_STR_MAX - 1);
    return 0;
}

/* args: where the syscall's six argument registers are (tracepoint record or pt_regs copy) */
/* with_argv: the program can see execve/execveat (a selection without them loads
 * sys_enter_plain, which the verifier checks without the argv walk: ~0.4 ms less to load) */
static __always_inline int on_enter(u64 nr, const u64 *args, int with_argv) {
    struct ss_config *c = get_cfg();
    if (!c) return 0;
    u64 id = bpf_get_current_pid_tgid();
    if (!wanted(c, id)) return 0;
    struct ss_inflight e = {};
    e.nr = (s64)(s32)nr;
    bpf_probe_read_kernel(e.args, sizeof(e.args), args);
    u32 key = (u32)nr;
    struct ss_plan *pl = key < PLANS_MAX ? bpf_map_lookup_elem(&plans, &key) : NULL;
    if (pl) {
        for (u32 i = 0; i < 6; i++)
            if (i >= pl->nargs) e.args[i] = 0;
    }
    e.t0 = bpf_ktime_get_ns() + c->offset;
    e.seq0 = next_seq();
    u32 tid = (u32)id;
    if (bpf_map_update_elem(&inflight, &tid, &e, BPF_ANY) < 0) { /* no memory for the entry */
        count_lost(0);
        return 0;
    }
    if (!with_argv || (nr != c->execve_nr && nr != c->execveat_nr)) return 0;

    /* execve's path and argv, sent ahead of the call's own record */
    struct ss_scratch *s = bpf_map_lookup_elem(&scratch, &ZERO);
    if (!s) return 0;
    struct ss_rec_syscall *r = (struct ss_rec_syscall *)s->buf;
    __builtin_memset(r, 0, sizeof(*r));
    header(&r->h, 0, R_SYSCALL, tid, id >> 32);
    r->h.flags = F_ENTRY_ONLY;
    r->nr = e.nr;
    r->seq0 = e.seq0;
    int execveat = nr == c->execveat_nr;
    u64 path = execveat ? e.args[1] : e.args[0];
    u64 argv = execveat ? e.args[2] : e.args[1];
    u32 pos = sizeof(*r);
    u32 nblobs = 0;
    if (path) nblobs += add_blob(s->buf, &pos, path, 0, 1, 0, READ_MAX - 1);
    if (argv) {
        /* the pointer array first (its blob is filled in after the strings are read) */
        u32 arr = (u32)BOUND(pos, 8191);
        u64 *ptrs = (u64 *)(s->buf + arr + sizeof(struct ss_blob_hdr));
        if (bpf_probe_read_user(ptrs, ARGV_ITEMS * 8, (void *)argv) < 0) goto out;
        struct argv_walk *w = &s->aw;
        w->arr = arr;
        w->pos = pos;
        w->nblobs = 0;
        w->n = 0;
        bpf_loop(ARGV_ITEMS, count_argv, NULL, 0);
        u32 n = w->n;
        if (n > ARGV_ITEMS) n = ARGV_ITEMS; /* a bound the verifier sees (it was read back) */
        u32 count = n < ARGV_ITEMS ? n + 1 : n; /* with the NULL when it was read */
        struct ss_blob_hdr *ah = (struct ss_blob_hdr *)(s->buf + arr);
        ah->addr = argv;
        ah->len = count * 8;
        ah->at_exit = 0;
        ah->op = P_MEM;
        ah->fault = 0;
        ah->pad = 0;
        pos = arr + sizeof(struct ss_blob_hdr) + count * 8;
        nblobs++;
        w->pos = pos;
        bpf_loop(n, read_argv_item, NULL, 0);
        pos = w->pos;
        nblobs += w->nblobs;
    }
out:
    if (!nblobs) return 0; /* nothing read: the call's own record says it all */
    r->nblobs = nblobs;
    r->h.size = pos;
    emit(s->buf, pos, 1);
    return 0;
}

static __always_inline int on_exit(s64 ret) {
    struct ss_config *c = get_cfg();
    if (!c) return 0;
    u64 id = bpf_get_current_pid_tgid();
    u32 tid = (u32)id;
    struct ss_inflight *e = bpf_map_lookup_elem(&inflight, &tid);
    if (!e || c->stopped) return 0;
    emit_syscall(c, e, id, ret, 1);
    bpf_map_delete_elem(&inflight, &tid);
    return 0;
}

static __always_inline int tp_enter(struct trace_event_raw_sys_enter *ctx, int with_argv) {
    /* an int in per-syscall tracepoints, a long in raw_syscalls: the low half either way */
    s32 nr;
    bpf_probe_read_kernel(&nr, sizeof(nr), (u8 *)ctx + 8);
    /* the arguments follow the syscall number in raw_syscalls and per-syscall tracepoints
     * alike; read without a context access, which would have to fit the smallest record */
    return on_enter((u64)(s64)nr, (const u64 *)((u8 *)ctx + 16), with_argv);
}

SEC("tracepoint")
int sys_enter(struct trace_event_raw_sys_enter *ctx) {
    return tp_enter(ctx, 1);
}

SEC("tracepoint")
int sys_enter_plain(struct trace_event_raw_sys_enter *ctx) {
    return tp_enter(ctx, 0);
}

SEC("tracepoint")
int sys_exit(struct trace_event_raw_sys_exit *ctx) {
    s64 ret;
    bpf_probe_read_kernel(&ret, sizeof(ret), (u8 *)ctx + 16);
    return on_exit(ret);
}

/* The fentry/fexit programs are built into a second object (SYSSPAN_FENTRY), loaded only when
 * they are asked for: the usual one without them is a fifth of the size, and libbpf opens and
 * relocates every program of an object, loaded or not (about 0.3 ms of a start). */
#ifdef SYSSPAN_FENTRY
/* The syscall wrappers (__x64_sys_openat(const struct pt_regs *regs)) get the user's registers:
 * the arguments are in that inner pt_regs, in the syscall calling convention's order. */
static __always_inline int enter_slot(u32 slot, struct pt_regs *regs) {
    u32 *nr = bpf_map_lookup_elem(&slot_nr, &slot);
    if (!nr) return 0;
    u64 args[6];
#if defined(__TARGET_ARCH_arm64)
    args[0] = regs->regs[0];
    args[1] = regs->regs[1];
    args[2] = regs->regs[2];
    args[3] = regs->regs[3];
    args[4] = regs->regs[4];
    args[5] = regs->regs[5];
#else
    args[0] = regs->di;
    args[1] = regs->si;
    args[2] = regs->dx;
    args[3] = regs->r10;
    args[4] = regs->r8;
    args[5] = regs->r9;
#endif
    return on_enter(*nr, args, 1);
}

/* attach targets are set by user space before loading; unused slots are not loaded */
#define FENTRY_PAIR(i)                                                            \
    SEC("fentry")                                                                 \
    int BPF_PROG(fentry_##i, struct pt_regs *regs) { return enter_slot(i, regs); } \
    SEC("fexit")                                                                  \
    int BPF_PROG(fexit_##i, struct pt_regs *regs, long ret) { return on_exit(ret); }

FENTRY_PAIR(0) FENTRY_PAIR(1) FENTRY_PAIR(2) FENTRY_PAIR(3) FENTRY_PAIR(4) FENTRY_PAIR(5)
FENTRY_PAIR(6) FENTRY_PAIR(7) FENTRY_PAIR(8) FENTRY_PAIR(9) FENTRY_PAIR(10) FENTRY_PAIR(11)
FENTRY_PAIR(12) FENTRY_PAIR(13) FENTRY_PAIR(14) FENTRY_PAIR(15) FENTRY_PAIR(16) FENTRY_PAIR(17)
FENTRY_PAIR(18) FENTRY_PAIR(19) FENTRY_PAIR(20) FENTRY_PAIR(21) FENTRY_PAIR(22) FENTRY_PAIR(23)
FENTRY_PAIR(24) FENTRY_PAIR(25) FENTRY_PAIR(26) FENTRY_PAIR(27) FENTRY_PAIR(28) FENTRY_PAIR(29)
FENTRY_PAIR(30) FENTRY_PAIR(31)
#endif

SEC("tracepoint/task/task_newtask")
int newtask(struct trace_event_raw_task_newtask *ctx) {
    struct ss_config *c = get_cfg();
    if (!c || !c->follow) return 0;
    u64 id = bpf_get_current_pid_tgid();
    u32 parent = id >> 32;
    if (!bpf_map_lookup_elem(&traced, &parent)) return 0;
    if (ctx->clone_flags & CLONE_THREAD) return 0;
    u32 child = (u32)ctx->pid;
    u8 one = 1;
    bpf_map_update_elem(&traced, &child, &one, BPF_ANY);
    struct ss_rec_start r = {};
    header(&r.h, sizeof(r), R_START, child, child);
    r.t = bpf_ktime_get_ns() + c->offset;
    r.seq = next_seq();
    r.parent = (s32)parent;
    emit(&r, sizeof(r), 1);
    return 0;
}

SEC("tracepoint/sched/sched_process_exec")
int exec(struct trace_event_raw_sched_process_exec *ctx) {
    struct ss_config *c = get_cfg();
    if (!c) return 0;
    u64 id = bpf_get_current_pid_tgid();
    if (!wanted(c, id) && !(c->thread_only && (u32)ctx->old_pid == c->root)) return 0;
    struct ss_scratch *s = bpf_map_lookup_elem(&scratch, &ZERO);
    if (!s) return 0;
    struct ss_rec_exec *r = (struct ss_rec_exec *)s->buf;
    header(&r->h, 0, R_EXEC, (u32)id, id >> 32); /* its size once the data is read */
    r->t = bpf_ktime_get_ns() + c->offset;
    r->seq = next_seq();
    r->caller = ctx->old_pid;
    r->pad = 0;
    u32 off = BPF_CORE_READ(ctx, __data_loc_filename) & 0xffff;
    u8 *data = s->buf + sizeof(*r);
    long plen = bpf_probe_read_kernel_str(data, EXEC_DATA_MAX, (u8 *)ctx + off);
    if (plen < 1) plen = 1;
    plen -= 1;
    r->pathlen = (u32)plen;
    /* argv as the new image holds it: NUL-separated strings between arg_start and arg_end */
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    u64 start = BPF_CORE_READ(task, mm, arg_start);
    u64 end = BPF_CORE_READ(task, mm, arg_end);
    u64 alen = end > start ? end - start : 0;
    if (alen > EXEC_DATA_MAX) alen = EXEC_DATA_MAX;
    u64 apos = BOUND(plen, 4095);
    if (alen && bpf_probe_read_user(data + apos, BOUND(alen, 8191), (void *)start) < 0)
        alen = 0;
    r->argvlen = (u32)alen;
    u32 size = (sizeof(*r) + apos + (u32)alen + 7) & ~7u;
    r->h.size = size;
    emit(s->buf, size, 1);
    return 0;
}

SEC("tracepoint/sched/sched_process_exit")
int proc_exit(struct trace_event_raw_sched_process_exit *ctx) {
    struct ss_config *c = get_cfg();
    if (!c) return 0;
    u64 id = bpf_get_current_pid_tgid();
    u32 tid = (u32)id;
    struct ss_inflight *e = bpf_map_lookup_elem(&inflight, &tid);
    if (e) { /* exit_group and friends: a call that never returns */
        emit_syscall(c, e, id, 0, 0);
        bpf_map_delete_elem(&inflight, &tid);
    }
    if (!ctx->group_dead || !wanted(c, id)) return 0;
    u32 tgid = id >> 32;
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    struct ss_rec_exit r = {};
    header(&r.h, sizeof(r), R_EXIT, tid, tgid);
    r.t = bpf_ktime_get_ns() + c->offset;
    r.seq = next_seq();
    r.status = BPF_CORE_READ(task, exit_code);
    r.has_status = 1;
    emit(&r, sizeof(r), 1);
    if (c->follow) bpf_map_delete_elem(&traced, &tgid);
    return 0;
}

SEC("tracepoint/signal/signal_deliver")
int sig_deliver(struct trace_event_raw_signal_deliver *ctx) {
    struct ss_config *c = get_cfg();
    if (!c) return 0;
    u64 id = bpf_get_current_pid_tgid();
    if (!wanted(c, id)) return 0;
    struct ss_rec_signal r = {};
    header(&r.h, sizeof(r), R_SIGNAL, (u32)id, id >> 32);
    r.t = bpf_ktime_get_ns() + c->offset;
    r.seq = next_seq();
    r.sig = ctx->sig;
    r.code = ctx->code;
    emit(&r, sizeof(r), 1);
    return 0;
}
