/* --source's call sites, answered by the stop loop itself once Python has found them.
 *
 * Why: with --source every traced syscall entry called back into Python for the stack
 * capture, and taking the GIL at every stop (while the drain thread wants it too) cost
 * several times the capture itself. Most syscalls of a program are made by a libc wrapper
 * whose frame is the stack pointer plus a constant, called from the program's own code: the
 * site is then (pc, return address), and the return address is one word at sp + offset.
 *
 * Python's unwinder (collector/source/unwind.py) teaches the loop the stacks it walked to a
 * site through frames whose canonical frame address is the stack pointer plus a constant
 * (libc's, at -O2): "the syscall instruction at pc is itself a site" (off -1), or "at pc, the
 * return address is at sp + off and the caller's stack pointer is sp + cfa"; the same of
 * each return address on the way (the frame it returns into), and "ra is a site's return
 * address" (off -1) of the last. The loop answers a stop from these facts alone, reading one
 * word per frame, and puts the pcs into the syscall record as a P_STACK blob; anything it
 * does not know (a new pc, a return address not taught, an unreadable word) goes to Python
 * as before, so the answers are exactly the ones Python gave. Facts are per process image: a
 * process's generation changes at exec, and a new process (a reused pid too) starts with a
 * new one.
 */
#ifndef SYSSPAN_SITES_H
#define SYSSPAN_SITES_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { S_TOP = 1, S_RET = 2 };
#define SITES_CAP 8192 /* slots; emptied when half full (Python re-teaches what is used) */
#define SITES_DEPTH 8  /* frames the loop follows to a site */

typedef struct {
    uint64_t addr, gen;
    int32_t tgid;
    int16_t kind; /* 0: empty slot */
    int16_t pad;
    int64_t off; /* the return address's slot from sp; -1: this pc is a site */
    int64_t cfa; /* the caller's sp minus this frame's */
} site_ent;

typedef struct {
    site_ent *slots;
    uint32_t used;
    uint64_t insn;    /* bytes of the syscall instruction: pc = ip - insn */
    uint64_t ra_mask; /* strips pointer-authentication bits */
    uint64_t next_gen;
    uint64_t answered; /* stops answered here (tests and benchmarks) */
} sites;

static inline uint32_t site_slot(uint64_t addr, uint64_t gen, int32_t tgid, int kind) {
    uint64_t h = (addr ^ (gen << 40) ^ ((uint64_t)(uint32_t)tgid << 20) ^ (uint64_t)kind) *
                 0x9E3779B97F4A7C15ull;
    return (uint32_t)(h >> 40) & (SITES_CAP - 1);
}

static site_ent *site_find(sites *S, int32_t tgid, uint64_t gen, uint64_t addr, int kind) {
    if (!S->slots) return NULL;
    for (uint32_t i = site_slot(addr, gen, tgid, kind), n = 0; n < SITES_CAP;
         i = (i + 1) & (SITES_CAP - 1), n++) {
        site_ent *e = &S->slots[i];
        if (!e->kind) return NULL;
        if (e->addr == addr && e->gen == gen && e->tgid == tgid && e->kind == kind) return e;
    }
    return NULL;
}

/* Returns 0, or -1 when out of memory. */
static int site_learn(sites *S, int32_t tgid, uint64_t gen, uint64_t addr, int kind, int64_t off,
                      int64_t cfa) {
    if (!S->slots) {
        S->slots = calloc(SITES_CAP, sizeof(site_ent));
        if (!S->slots) return -1;
    }
    site_ent *e = site_find(S, tgid, gen, addr, kind);
    if (e) {
        e->off = off;
        e->cfa = cfa;
        return 0;
    }
    if (S->used >= SITES_CAP / 2) {
        memset(S->slots, 0, SITES_CAP * sizeof(site_ent));
        S->used = 0;
    }
    uint32_t i = site_slot(addr, gen, tgid, kind);
    while (S->slots[i].kind) i = (i + 1) & (SITES_CAP - 1);
    S->slots[i] = (site_ent){addr, gen, tgid, (int16_t)kind, 0, off, cfa};
    S->used++;
    return 0;
}

/* The site of a syscall entered at (ip, sp) by thread tid of a process whose image is
 * (tgid, gen): the pcs into out (at most SITES_DEPTH), their number; 0 when Python has to
 * answer. */
static int site_answer(sites *S, int32_t tgid, uint64_t gen, int tid, uint64_t ip, uint64_t sp,
                       uint64_t out[SITES_DEPTH]) {
    uint64_t pc = ip - S->insn;
    site_ent *e = site_find(S, tgid, gen, pc, S_TOP);
    if (!e) return 0;
    out[0] = pc;
    int n = 1;
    while (e->off >= 0) {
        if (n == SITES_DEPTH) return 0;
        uint64_t word;
        struct iovec lo = {&word, 8}, re = {(void *)(uintptr_t)(sp + (uint64_t)e->off), 8};
        if (process_vm_readv(tid, &lo, 1, &re, 1, 0) != 8) return 0;
        uint64_t ra = word & S->ra_mask;
        if (ra < 4096) return 0;
        out[n++] = ra;
        sp += (uint64_t)e->cfa;
        e = site_find(S, tgid, gen, ra, S_RET);
        if (!e) return 0;
    }
    return n;
}

#endif
