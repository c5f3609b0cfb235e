"""Source correlation (``--source``, ``-k``): which line of the program made each syscall.

``SourceCapture`` unwinds the tracee's stack at syscall entry with the call frame
information of each mapped ELF file and later names the frames with DWARF line tables and
function DIEs (pyelftools), or the ELF symbol table when there is no debug information.
"""

from sysspan.collector.source.site import SourceCapture

__all__ = ["SourceCapture"]
