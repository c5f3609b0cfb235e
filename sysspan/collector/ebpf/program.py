"""The bpftrace program the eBPF backend runs, generated for one trace.

Filtering happens in the kernel: a map of traced process ids (filled as the tree forks when
following children), and only the tracepoints of the syscalls ``-e trace=`` selects (all
syscalls: the two ``raw_syscalls`` tracepoints; attaching hundreds of per-syscall tracepoints
takes bpftrace tens of seconds).

One syscall becomes one ``S`` line at its exit, with the entry time and arguments kept in
per-thread maps. What the decoder would read from memory (its plans: paths, structs) is read
at exit, not at entry: a tracepoint program cannot fault pages in, and at exit the kernel has
just touched that memory itself. Each read is its own line before the ``S`` line (``P`` for a
NUL-terminated string, ``M`` for bytes in hex), because one printf holding several buffers
overflows the 512-byte BPF stack. execve's argv is read at entry (``A`` lines), since the old
image is gone at exit.

Line grammar (fields separated by one space; ``P``'s string runs to the end of the line):
  S tid tgid nr ret t0 t1 a0 a1 a2 a3 a4 a5     a finished syscall (t: CLOCK_MONOTONIC ns)
  U tid tgid nr t0 t1 a0 .. a5                  a syscall the thread never returned from
  P tid k <string>                              read k of the coming S line: a C string
  M tid k <hex bytes>                           read k: memory
  A tid i ptr <string>                          execve argv[i] at address ptr
  F child parent t                              a new process (fork/vfork/clone without THREAD)
  E tid tgid t <path>                           exec
  X tgid t wait_status                          the process's last thread exited
  G tid tgid t sig code                         a signal delivered
  A tid -1 ptr <path>                           execve's path (argv[i] for i >= 0)
  Z pid cpu zzz...                              sysspan's own marker call (getpgid(pid))
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

from sysspan.collector.ebpf.tracefs import Target
from sysspan.collector.records import P_CSTR, P_MEM

#: bpftrace's own ceiling for strings (BPFTRACE_STRLEN); longer strings show as addresses.
STRLEN = 160
#: Longest memory read per argument (bpftrace caps buf() at its string length); stat (144),
#: sockaddr (128) and rusage (144) fit.
MEM_MAX = STRLEN
#: Most argv elements read at execve.
ARGV_ITEMS = 64
#: Up to this many selected syscalls get their own tracepoints (the other syscalls then fire
#: no probe at all); more share the raw_syscalls ones, since bpftrace attaches each tracepoint
#: in about 80 ms.
PER_SYSCALL_MAX = 8
#: Most reads of one syscall (wait4: status and rusage; rename: two paths).
MAX_READS = 4
CLONE_THREAD = 0x10000
PF_RVAL, PF_U32LEN = 1, 2
SYNC_PAD = 500


class Read(NamedTuple):
    """One memory read of a syscall, made at its exit."""

    arg: int
    cstr: bool
    cap: int
    len_arg: int
    flags: int
    mult: int
    cond_arg: int
    cond_val: int
    at_exit: bool  # from the decoder's exit plan (only kept when the call succeeded)


def reads_of(plan: tuple | None) -> tuple[Read, ...] | None:
    """The reads of one decoder plan entry; None when the plan needs Python at a stop (the
    argument then shows as its address, as strace shows what it does not decode)."""
    if plan is None:
        return ()
    entry_ops, entry_py, exit_ops, exit_py = plan
    out: list[Read] = []
    for ops, py, at_exit in ((entry_ops, entry_py, False), (exit_ops, exit_py, True)):
        if py:
            continue
        for arg, op, cap, len_arg, flags, mult, cond_arg, cond_val in ops:
            if op not in (P_MEM, P_CSTR):
                continue  # the stderr copy for the decision protocol: ptrace only
            out.append(Read(arg, op == P_CSTR, cap, len_arg, flags, mult, cond_arg, cond_val, at_exit))
    return tuple(out)


def _filter(t: Target) -> str:
    if t.follow:
        return "@tr[pid]"
    if t.thread_only:
        return f"tid == {t.root}"
    return f"pid == {t.root}"


def _plan_table(groups: dict[tuple[Read, ...], list[int]]) -> list[str]:
    """BEGIN statements storing every syscall's reads in maps: the exit probe runs one loop
    over them (one branch per syscall would need a stack slot per printf, beyond 512 bytes)."""
    out: list[str] = []
    for reads, nrs in groups.items():
        for nr in nrs:
            if not reads:
                continue
            out.append(f"@nreads[{nr}] = {len(reads)};")
            for k, r in enumerate(reads):
                cap = min(r.cap, STRLEN if r.cstr else MEM_MAX // max(r.mult, 1))
                # packed into one number: the probe copies map values onto its small stack
                code = (
                    r.arg | int(r.cstr) << 4 | (r.len_arg + 1) << 5 | r.flags << 9
                    | r.mult << 11 | (r.cond_arg + 1) << 19 | int(r.at_exit) << 23 | cap << 24
                )
                out.append(f"@rd[{nr}, {k}] = {code}; @rdv[{nr}, {k}] = {r.cond_val};")
    return out


def _any_reads(groups: dict[tuple[Read, ...], list[int]]) -> bool:
    return any(reads for reads in groups)


def _arg(sel: str) -> str:
    """The argument whose index is in ``sel`` (tuples only take literal indexes)."""
    return (
        f"({sel} == 0 ? $a.1 : ({sel} == 1 ? $a.2 : ({sel} == 2 ? $a.3 : ({sel} == 3 ? $a.4 : "
        f"({sel} == 4 ? $a.5 : $a.6)))))"
    )


def _read_loop(cstr: bool) -> list[str]:
    """The exit-probe block making this syscall's string (or memory) reads. Strings and
    memory reads live in separate blocks (separate BPF programs, each with its own 512-byte
    stack); bpftrace runs blocks on one tracepoint in the order written."""
    if cstr:
        emit = [f'printf("P %d %d %s\\n", tid, $k, str(uptr($addr), {STRLEN}));']
    else:
        emit = [
            "$l = (int64)($o >> 24);",
            "$i = (($o >> 5) & 15) - 1;",
            "if ($i >= 0) {",
            f"  $v = (int64){_arg('$i')};",
            "  if ($o & (2 << 9)) { $v = $v & 0xffffffff; }",
            "  if ($v < $l) { $l = $v; }",
            "}",
            "if (($o & (1 << 9)) && $r < $l) { $l = $r; }",
            "$m = ($o >> 11) & 255;",
            "if ($m > 0) { $l = $l * $m; }",
            # an empty read needs no line: the decoder does not read 0 bytes
            "if ($l > 0) {",
            '  printf("M %d %d %rh\\n", tid, $k, buf(uptr($addr), $l));',
            "}",
        ]
    return [
        "$a = @a[tid];",
        "$n = @nreads[$a.0];",
        "$r = (int64)args->ret;",
        # EFAULT: the kernel could not read it either; those arguments show as addresses
        "if ($n > 0 && $r != -14) {",
        "  $k = 0;",
        f"  while ($k < {MAX_READS}) {{",
        "    if ($k >= $n) { break; }",
        "    $o = @rd[$a.0, $k];",
        "    $i = $o & 15;",
        f"    $addr = {_arg('$i')};",
        f"    $ok = (($o >> 4) & 1) == {int(cstr)} && $addr != 0 && ((($o >> 23) & 1) == 0 || $r >= 0);",
        "    $i = (($o >> 19) & 15) - 1;",
        f"    if ($i >= 0 && {_arg('$i')} != @rdv[$a.0, $k]) {{ $ok = 0; }}",
        "    if ($ok) {",
        *("      " + line for line in emit),
        "    }",
        "    $k++;",
        "  }",
        "}",
    ]


def _exit_blocks(probes: str, reads: bool, nr_field: str) -> list[str]:
    """The read blocks only run for syscalls that read memory (one map lookup for the rest);
    the last block prints the syscall."""
    out: list[str] = []
    for cstr in (True, False) if reads else ():
        out.append(f"{probes} /@nreads[args->{nr_field}] && @t0[tid]/ {{")
        out.extend("  " + line for line in _read_loop(cstr))
        out.append("}")
    out.append(f"{probes} /@t0[tid]/ {{")
    out.append(
        '  $a = @a[tid]; printf("S %d %d %lld %lld %llu %llu %llu %llu %llu %llu %llu %llu\\n", tid, pid, $a.0, '
        "args->ret, @t0[tid], nsecs, $a.1, $a.2, $a.3, $a.4, $a.5, $a.6);"
    )
    out.append("  delete(@a[tid]); delete(@t0[tid]);")
    out.append("}")
    return out


def _argv_lines(path_expr: str, argv_expr: str) -> list[str]:
    return [
        f'printf("A %d -1 %llu %s\\n", tid, {path_expr}, str(uptr({path_expr}), {STRLEN}));',
        "$i = 0;",
        f"while ($i < {ARGV_ITEMS}) {{",
        f"  $p = *uptr((uint64 *)({argv_expr} + (uint64)$i * 8));",
        "  if ($p == 0) { break; }",
        f'  printf("A %d %d %llu %s\\n", tid, $i, $p, str(uptr($p), {STRLEN}));',
        "  $i++;",
        "}",
    ]


def generate(
    target: Target,
    selected: Iterable[int] | None,
    names: dict[int, str],
    plans: Sequence[tuple | None],
    execve_argv: dict[int, int],
    fields: dict[int, list[str]] | None = None,
) -> str:
    """The bpftrace program. ``selected``: syscall numbers (None: all); ``execve_argv``: the
    exec syscalls' numbers and their argv argument; ``fields``: for selected syscalls, the
    names of their tracepoint's argument fields."""
    flt = _filter(target)
    base_flt = flt
    out: list[str] = []
    begin: list[str] = []
    if target.follow:
        begin.append(f"@tr[{target.root}] = 1;")
        out.append(
            f"tracepoint:task:task_newtask /@tr[pid] && !(args->clone_flags & {CLONE_THREAD})/ "
            '{ @tr[args->pid] = 1; printf("F %d %d %llu\\n", args->pid, pid, nsecs); }'
        )
    groups: dict[tuple[Read, ...], list[int]] = {}

    def group(nr: int) -> tuple[Read, ...]:
        reads = reads_of(plans[nr] if nr < len(plans) else None) or ()
        groups.setdefault(reads, []).append(nr)
        return reads

    chosen = None if selected is None else sorted(nr for nr in selected if nr in names)
    if chosen is None or len(chosen) > PER_SYSCALL_MAX:
        for nr in chosen if chosen is not None else sorted(names):
            group(nr)
        if chosen is not None:
            begin.extend(f"@sel[{nr}] = 1;" for nr in chosen)
            flt = f"{flt} && @sel[args->id]"
        out.append(f"tracepoint:raw_syscalls:sys_enter /{flt}/ {{")
        out.append(
            "  @t0[tid] = nsecs; @a[tid] = (args->id, args->args[0], args->args[1], "
            "args->args[2], args->args[3], args->args[4], args->args[5]);"
        )
        for nr, argi in sorted(execve_argv.items()):
            if chosen is not None and nr not in chosen:
                continue
            out.append(f"  if (args->id == {nr}) {{")
            out.extend(
                "    " + line
                for line in _argv_lines(f"args->args[{argi - 1}]", f"args->args[{argi}]")
            )
            out.append("  }")
        out.append("}")
        out.extend(_exit_blocks("tracepoint:raw_syscalls:sys_exit", _any_reads(groups), "id"))
    else:
        fields = fields or {}
        for nr in chosen:
            name = names[nr]
            f = [f"(int64)args->{x}" for x in fields.get(nr, [])[:6]]
            f += ["0"] * (6 - len(f))
            out.append(f"tracepoint:syscalls:sys_enter_{name} /{flt}/ {{")
            out.append(f"  @t0[tid] = nsecs; @a[tid] = ((int64){nr}, {', '.join(f)});")
            if nr in execve_argv:
                field = fields.get(nr, [])
                i = execve_argv[nr]
                out.extend(
                    "  " + line
                    for line in _argv_lines(f"(uint64)args->{field[i - 1]}", f"(uint64)args->{field[i]}")
                )
            out.append("}")
            group(nr)
        probes = ", ".join(f"tracepoint:syscalls:sys_exit_{names[nr]}" for nr in chosen)
        out.extend(_exit_blocks(probes, _any_reads(groups), "__syscall_nr"))
    out.insert(0, "BEGIN { " + " ".join(begin + _plan_table(groups)) + " }")
    out.append(
        f'tracepoint:sched:sched_process_exec /{base_flt}/ {{ printf("E %d %d %llu %s\\n", tid, pid, '
        "nsecs, str(args->filename)); }"
    )
    out.append(f"tracepoint:sched:sched_process_exit /{base_flt}/ {{")
    out.append("  if (@t0[tid]) {")
    out.append(
        '    $a = @a[tid]; printf("U %d %d %lld %llu %llu %llu %llu %llu %llu %llu %llu\\n", tid, pid, $a.0, '
        "@t0[tid], nsecs, $a.1, $a.2, $a.3, $a.4, $a.5, $a.6);"
    )
    out.append("    delete(@a[tid]); delete(@t0[tid]);")
    out.append("  }")
    out.append(
        '  if (args->group_dead) { printf("X %d %llu %d\\n", pid, nsecs, curtask->exit_code); '
        + ("delete(@tr[pid]); " if target.follow else "")
        + "}"
    )
    out.append("}")
    out.append(
        f"tracepoint:signal:signal_deliver /{base_flt}/ "
        '{ printf("G %d %d %llu %d %d\\n", tid, pid, nsecs, args->sig, args->code); }'
    )
    # Attached last: once sysspan sees its line, every probe above is in place. The Z line
    # is long so that a few of them push bpftrace's fully buffered output out. At the end,
    # seeing one from each CPU means every event of that CPU's buffer before it was read
    # (and the count of events lost there, which the kernel only writes before a later one).
    out.append(
        f"tracepoint:syscalls:sys_enter_getpgid /pid == {target.ready_pid}/ "
        f'{{ printf("Z %d %d {"z" * SYNC_PAD}\\n", args->pid, cpu); }}'
    )
    out.append(
        "END { clear(@t0); clear(@a); "
        + ("clear(@nreads); clear(@rd); clear(@rdv); " if _any_reads(groups) else "")
        + ("clear(@sel); " if chosen is not None and len(chosen) > PER_SYSCALL_MAX else "")
        + ("clear(@tr); " if target.follow else "")
        + "}"
    )
    return "\n".join(out) + "\n"
