"""Was a frame removed by a tail call between a call site and the syscall?

A function that ends in ``jmp open@plt`` (a tail call, usual from -O2 on) leaves no frame:
the stack goes from ``open`` straight to the function that called it, whose return address
follows a ``call`` to the function that jumped away. The syscall is then attributed to that
caller's line, which is right as far as the stack can tell, but it is not the line of the
call that made the syscall. This module recognises the case from the instruction before the
return address: a direct call whose target is not the function the stack continues in.
"""

from __future__ import annotations

TYPE_CHECKING = False

if TYPE_CHECKING:
    from sysspan.collector.source.elfinfo import ElfInfo
    from sysspan.collector.source.unwind import Frame


def call_target(module: ElfInfo, ret: int) -> int | None:
    """Target of the direct call that ends right before the return address ``ret`` (a
    virtual address of ``module``); None when the instruction there is not one (indirect
    calls through a register or memory name no target)."""
    if module.machine == "x64":
        code = module.read_code(ret - 5, 5)
        if code is not None and code[0] == 0xE8:  # call rel32
            return ret + int.from_bytes(code[1:5], "little", signed=True)
        return None
    if module.machine == "AArch64":
        code = module.read_code(ret - 4, 4)
        if code is None:
            return None
        word = int.from_bytes(code, "little")
        if word >> 26 == 0b100101:  # bl imm26
            imm = word & 0x3FFFFFF
            if imm & 0x2000000:
                imm -= 0x4000000
            return ret - 4 + imm * 4
    return None


def tail_call_suspected(site: Frame, inner: Frame) -> bool:
    """True when the call before ``site``'s return address went to a function of the same
    file that is not where the stack continues (``inner``, the next frame inwards): that
    function left by a jump, and its own call site is lost."""
    module = site.module
    if module is None or site.adj == 0:
        return False
    ret = site.vaddr + site.adj
    target = call_target(module, ret)
    if target is None or module.in_plt(target):
        return False  # unknown, or a call into another file through the PLT
    callee = module.symbol(target)
    if callee is None:
        return False
    if inner.module is None or inner.module.key != module.key:
        return True  # called a function of this file, yet the stack continues elsewhere
    here = module.symbol(inner.vaddr)
    return here is not None and inner.vaddr - here[1] != target - callee[1]
