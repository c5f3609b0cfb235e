"""strace's text outputs, written as the trace runs: the per-syscall lines of ``-o FILE``
(``strace_lines.py``; as JSON records with ``--json``: ``json_lines.py``) and the ``-c``
table (``summary.py``). They format syscalls, not spans: the span sinks are in
``sysspan.exporters``.
"""
