/* The records sysspan.bpf.c writes: the layout the shared parser (../_records.h) reads, as the
 * ptrace stop loop writes it. _bpf.c includes both and checks with static assertions that the
 * sizes agree, so a mismatch fails the build instead of misreading the ring. The includer
 * defines the __u32 family (vmlinux.h in the BPF program, linux/types.h in the loader). */
#ifndef SYSSPAN_EBPF_RECORDS_H
#define SYSSPAN_EBPF_RECORDS_H

struct ss_rec_hdr {
    __u32 size;
    __u16 kind;
    __u16 flags;
    __s32 tid;
    __s32 tgid;
};

struct ss_rec_syscall {
    struct ss_rec_hdr h;
    __s64 nr;
    __u64 args[6];
    __s64 rval;
    __u64 t0, t1, seq0, seq1;
    __u64 ip, sp;
    __s32 caller;
    __u32 nblobs;
};

struct ss_blob_hdr {
    __u64 addr;
    __u32 len;
    __u8 at_exit, op, fault, pad;
};

struct ss_rec_start {
    struct ss_rec_hdr h;
    __u64 t, seq;
    __s32 parent, attached;
};

struct ss_rec_exec {
    struct ss_rec_hdr h;
    __u64 t, seq;
    __s32 caller;
    __u32 pathlen, argvlen, pad;
};

struct ss_rec_signal {
    struct ss_rec_hdr h;
    __u64 t, seq;
    __s32 sig, has_info, code, spid;
    __u32 suid;
    __s32 status;       /* SIGCHLD details: not read here (has_info 0) */
    __s64 utime, stime;
};

struct ss_rec_exit {
    struct ss_rec_hdr h;
    __u64 t, seq;
    __s32 status, has_status;
};

#endif
