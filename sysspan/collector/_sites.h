/* --source's call sites, answered by the stop loop itself from what Python taught it.
 *
 * Why: with --source every traced syscall entry called back into Python for the stack
 * capture, and taking the GIL at every stop (while the drain thread wants it too) cost
 * several times the capture itself. Most of a program's syscalls are made by a libc wrapper
 * called from the program's own code; the ~30 stops in ld.so before main walk ten frames of
 * ld.so each (its big functions keep their CFA in the frame pointer) to its entry point.
 *
 * Python (collector/source/unwind.py) teaches the loop facts about code addresses, each a
 * property of the instruction alone: "the syscall instruction at pc" (S_TOP) or "a return
 * address ra" (S_RET) is a site (W_SITE: the walk stops there, with it), ends the walk
 * (W_END: the outermost frame), has its CFA at sp or fp plus a constant with the return
 * address and the caller's fp saved at constant offsets from it (W_STEP), or has no unwind
 * rule, so the frame pointer chain is followed (W_FP). It teaches the rules of every frame it
 * walked, and, when a process is first seen to map a file (ld.so, the program, libc), the rules
 * and sites earlier runs kept for that file on disk, so the start-up stops in ld.so and the
 * program's known call sites need no call.
 *
 * site_answer walks the stack exactly as the Python walk does with these rules, stopping
 * where it stops; anything it does not know (an address not taught, another register, an
 * unreadable word, a deeper stack) goes to Python as before, so the answers are the ones
 * Python gives. Facts are per process image: a process's generation changes at exec, and a
 * new process (a reused pid too) starts with a new one.
 */
#ifndef SYSSPAN_SITES_H
#define SYSSPAN_SITES_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#if defined(__x86_64__)
#include <sys/user.h>
#elif defined(__aarch64__)
#include <asm/ptrace.h>
#include <elf.h>
#endif

enum { S_TOP = 1, S_RET = 2, S_BOTH = 3 /* learn_rules only: S_TOP at a, S_RET at a + 1 */ };
enum { W_SITE = 1, W_STEP = 2, W_FP = 3, W_END = 4 };
/* Slots: the table starts small (a big one costs a page fault per fact taught) and doubles
 * when half full, up to SITES_MAX; then it is emptied (Python re-teaches what is used). */
#define SITES_MIN 512
#define SITES_MAX 16384
#define SITES_DEPTH 32  /* frames the loop follows; deeper stacks go to Python */
#define SITE_WINDOW 1024 /* bytes of stack read at once */
#define NO_SAVE INT32_MIN

typedef struct {
    uint64_t addr, gen;
    int32_t tgid;
    uint8_t kind; /* 0: empty slot */
    uint8_t what;
    uint8_t base; /* W_STEP: the CFA is sp (0) or fp (1) plus cfa */
    uint8_t sys;  /* 1: the code lies in a system library (libc, ld.so) */
    int32_t cfa;
    int32_t ra; /* W_STEP: the return address is at CFA + ra */
    int32_t fp; /* W_STEP: the caller's fp is at CFA + fp; NO_SAVE: fp is kept */
} site_ent;

/* One fact as learn_rules takes it (packed, native byte order). */
typedef struct __attribute__((packed)) {
    uint64_t addr;
    uint8_t kind, what, base, sys;
    int32_t cfa, ra, fp;
} site_fact;

/* The first stack word a site walk will read, fetched by the entry plan's read of the
 * syscall's memory (one process_vm_readv for both: openat's path and the wrapper's return
 * address), so that the walk makes no read of its own. */
typedef struct {
    uint64_t addr; /* 0: nothing to fetch */
    int have;      /* buf holds the 16 bytes at addr */
    uint8_t buf[16];
} site_pre;

typedef struct {
    site_ent *slots;
    uint32_t used, cap;
    uint64_t insn;    /* bytes of the syscall instruction: pc = ip - insn */
    uint64_t ra_mask; /* strips pointer-authentication bits */
    uint64_t next_gen;
    uint64_t answered; /* stops answered here (tests and benchmarks) */
    uint64_t prefetched; /* of those, walks whose first read came with the entry plan's */
    uint64_t epoch;    /* times the table was emptied: Python then teaches again */
} sites;

static inline uint32_t site_slot(uint64_t addr, uint64_t gen, int32_t tgid, int kind,
                                 uint32_t cap) {
    uint64_t h = (addr ^ (gen << 40) ^ ((uint64_t)(uint32_t)tgid << 20) ^ (uint64_t)kind) *
                 0x9E3779B97F4A7C15ull;
    return (uint32_t)(h >> 40) & (cap - 1);
}

static site_ent *site_find(sites *S, int32_t tgid, uint64_t gen, uint64_t addr, int kind) {
    if (!S->slots) return NULL;
    for (uint32_t i = site_slot(addr, gen, tgid, kind, S->cap), n = 0; n < S->cap;
         i = (i + 1) & (S->cap - 1), n++) {
        site_ent *e = &S->slots[i];
        if (!e->kind) return NULL;
        if (e->addr == addr && e->gen == gen && e->tgid == tgid && e->kind == kind) return e;
    }
    return NULL;
}

/* Returns 0, or -1 when out of memory. */
static int site_learn(sites *S, int32_t tgid, uint64_t gen, uint64_t addr, int kind,
                      const site_fact *f) {
    if (!S->slots) {
        S->slots = calloc(SITES_MIN, sizeof(site_ent));
        if (!S->slots) return -1;
        S->cap = SITES_MIN;
    }
    site_ent *e = site_find(S, tgid, gen, addr, kind);
    if (!e) {
        if (S->used >= S->cap / 2) {
            site_ent *old = S->slots;
            uint32_t ocap = S->cap, ncap = ocap < SITES_MAX ? 2 * ocap : ocap;
            site_ent *grown = calloc(ncap, sizeof(site_ent));
            if (!grown) return -1;
            S->slots = grown;
            S->cap = ncap;
            S->used = 0;
            if (ncap == ocap) S->epoch++;
            for (uint32_t i = 0; ncap > ocap && i < ocap; i++) {
                if (!old[i].kind) continue;
                uint32_t j = site_slot(old[i].addr, old[i].gen, old[i].tgid, old[i].kind, ncap);
                while (grown[j].kind) j = (j + 1) & (ncap - 1);
                grown[j] = old[i];
                S->used++;
            }
            free(old);
        }
        uint32_t i = site_slot(addr, gen, tgid, kind, S->cap);
        while (S->slots[i].kind) i = (i + 1) & (S->cap - 1);
        e = &S->slots[i];
        S->used++;
    }
    *e = (site_ent){addr, gen, tgid, (uint8_t)kind, f->what, f->base, f->sys != 0, f->cfa, f->ra,
                     f->fp};
    return 0;
}

/* Whether a fact is one site_answer can follow. */
static int site_fact_ok(const site_fact *f) {
    if (f->kind < S_TOP || f->kind > S_BOTH) return 0;
    if (f->what == W_STEP) return f->base <= 1;
    return f->what == W_SITE || f->what == W_FP || f->what == W_END;
}

/* The frame pointer of a thread stopped at a syscall entry (1), 0 when it cannot be read. */
static int site_live_fp(int tid, uint64_t *fp) {
#if defined(__x86_64__)
    struct user_regs_struct r;
    if (ptrace(PTRACE_GETREGS, tid, 0, &r) < 0) return 0;
    *fp = r.rbp;
    return 1;
#elif defined(__aarch64__)
    struct user_pt_regs r;
    struct iovec io = {&r, sizeof r};
    if (ptrace(PTRACE_GETREGSET, tid, (void *)NT_PRSTATUS, &io) < 0) return 0;
    *fp = r.regs[29];
    return 1;
#else
    (void)tid;
    (void)fp;
    return 0;
#endif
}

typedef struct {
    uint64_t base;
    size_t len;
    int reads;
    uint8_t buf[SITE_WINDOW];
} site_win;

/* The stack word at addr through a window of the stack read at once: 1, or 0 if unreadable.
 * The first read is small (most stops need one word: a libc wrapper's return address). */
static int site_word(int tid, site_win *w, uint64_t addr, uint64_t *out) {
    if (!(w->len && addr >= w->base && addr - w->base <= w->len - 8)) {
        size_t want = w->reads++ ? SITE_WINDOW : 16;
        struct iovec lo = {w->buf, want}, re = {(void *)(uintptr_t)addr, want};
        ssize_t got = process_vm_readv(tid, &lo, 1, &re, 1, 0);
        if (got < 8) {
            w->len = 0;
            return 0;
        }
        w->base = addr;
        w->len = (size_t)got;
    }
    memcpy(out, w->buf + (addr - w->base), 8);
    return 1;
}

/* The frame pointer as the walk has it (see site_answer): 1, or 0 if it cannot be read. */
static int site_fp(int tid, site_win *w, int *known, uint64_t at, uint64_t *fp) {
    if (*known == 2 && !site_word(tid, w, at, fp)) return 0;
    if (!*known && !site_live_fp(tid, fp)) return 0;
    *known = 1;
    return 1;
}

/* Where the site walk from (ip, sp) reads first, when the syscall instruction's frame has
 * its CFA at sp plus a constant (a libc wrapper); 0 otherwise (see site_pre). */
static uint64_t site_first_word(sites *S, int32_t tgid, uint64_t gen, uint64_t ip, uint64_t sp) {
    site_ent *e = site_find(S, tgid, gen, ip - S->insn, S_TOP);
    if (!e || e->what != W_STEP || e->base || e->cfa <= 0) return 0;
    uint64_t cfa = sp + (uint64_t)(int64_t)e->cfa;
    if (cfa <= sp || cfa < 4096) return 0;
    return cfa + (uint64_t)(int64_t)e->ra;
}

/* The site of a syscall entered at (ip, sp) by thread tid of a process whose image is
 * (tgid, gen): the pcs into out (at most SITES_DEPTH), their number; 0 when Python has to
 * answer. The steps and the places it stops are those of Unwinder._walk in site mode.
 * *sys_only tells whether every frame lies in a system library: such a stack has no call
 * site (SourceCapture.site_frame), so the caller need not keep it. */
static int site_answer(sites *S, int32_t tgid, uint64_t gen, int tid, uint64_t ip, uint64_t sp,
                       uint64_t out[SITES_DEPTH], int *sys_only, const site_pre *pre) {
    uint64_t pc = ip - S->insn;
    site_ent *e = site_find(S, tgid, gen, pc, S_TOP);
    if (!e) return 0;
    out[0] = pc;
    *sys_only = e->sys;
    /* fp: 0 unknown (the live register), 1 known, 2 saved at fp_at (read when a frame needs
     * it: most stops end at a site before any does, and each read is a syscall) */
    int n = 1, fp_known = 0;
    uint64_t fp = 0, fp_at = 0, cfa, ra;
    site_win w;
    w.len = 0;
    w.reads = 0;
    if (pre && pre->have) { /* the first read, made with the entry plan's */
        memcpy(w.buf, pre->buf, sizeof pre->buf);
        w.base = pre->addr;
        w.len = sizeof pre->buf;
        w.reads = 1;
    }
    for (;;) {
        if (e->what == W_SITE || e->what == W_END) return n;
        if (e->what == W_STEP) {
            uint64_t base = sp;
            if (e->base) {
                if (!site_fp(tid, &w, &fp_known, fp_at, &fp)) return 0;
                base = fp;
            }
            /* Python's integers do not wrap: a CFA off either end goes to Python */
            if (e->cfa < 0 ? base < (uint64_t)(-(int64_t)e->cfa)
                           : base > UINT64_MAX - (uint64_t)e->cfa)
                return 0;
            cfa = base + (uint64_t)(int64_t)e->cfa;
            if (cfa <= sp) return n;
            if (cfa < 4096 || !site_word(tid, &w, cfa + (uint64_t)(int64_t)e->ra, &ra)) return 0;
            if (e->fp != NO_SAVE) {
                fp_at = cfa + (uint64_t)(int64_t)e->fp;
                fp_known = 2;
            }
        } else if (e->what == W_FP) {
            if (!site_fp(tid, &w, &fp_known, fp_at, &fp)) return 0;
            if (!fp || fp <= sp) return n;
            uint64_t saved;
            if (fp > UINT64_MAX - 16 || !site_word(tid, &w, fp, &saved) ||
                !site_word(tid, &w, fp + 8, &ra))
                return 0;
            cfa = fp + 16;
            fp = saved;
            fp_known = 1;
        } else {
            return 0;
        }
        ra &= S->ra_mask;
        if (ra < 4096) return n;
        if (n == SITES_DEPTH) return 0;
        out[n++] = ra;
        sp = cfa;
        e = site_find(S, tgid, gen, ra, S_RET);
        if (!e) return 0;
        *sys_only &= e->sys;
    }
}

#endif
