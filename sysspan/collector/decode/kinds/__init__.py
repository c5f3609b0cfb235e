"""The argument printers ("kinds"), one module per family of system calls.

``base`` defines ``Kind`` and the shared shapes; ``sysspan.collector.decode.tokens`` maps the
signature tokens to instances of these classes.
"""
