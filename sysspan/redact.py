"""Keep secrets out of traces: argv values that look like credentials are replaced.

Environment variables are never recorded at all; this covers what remains visible in argv
and in the decoded text of execve.
"""

from __future__ import annotations

import re

MASK = "[REDACTED]"
_SECRET_WORDS = r"(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|auth|authorization|credentials?|private[_-]?key)"
# --password=x, token=x, API_KEY=x (the value runs to the end of the argument)
_ASSIGN = re.compile(rf"(?i)^(-{{0,2}}[\w.-]*{_SECRET_WORDS}[\w.-]*=)(.+)$")
# "Authorization: Bearer x", "X-Api-Key: x" (header-style, as passed to curl -H)
_HEADER = re.compile(rf"(?i)^([\w-]*{_SECRET_WORDS}[\w-]*\s*:\s*)(.+)$")
# --password x (the secret is the next argument)
_FLAG = re.compile(rf"(?i)^-{{1,2}}[\w.-]*{_SECRET_WORDS}[\w.-]*$")
# scheme://user:secret@host
_URL_CRED = re.compile(r"(?i)([a-z][a-z0-9+.-]*://[^/\s:@\"]+:)([^@\s\"/]+)(@)")
_TEXT_ASSIGN = re.compile(rf"(?i)(\"-{{0,2}}[\w.-]*{_SECRET_WORDS}[\w.-]*=)([^\"]*)(\")")
_TEXT_HEADER = re.compile(rf"(?i)(\"[\w-]*{_SECRET_WORDS}[\w-]*\s*:\s*)([^\"]*)(\")")


def redact_arg(arg: str) -> str:
    m = _ASSIGN.match(arg) or _HEADER.match(arg)
    if m:
        return m.group(1) + MASK
    return _URL_CRED.sub(rf"\g<1>{MASK}\g<3>", arg)


def redact_argv(argv: list[str]) -> list[str]:
    """argv with secret-looking values masked (``--password x`` masks ``x`` too)."""
    out: list[str] = []
    mask_next = False
    for arg in argv:
        if mask_next:
            out.append(MASK)
            mask_next = False
            continue
        out.append(redact_arg(arg))
        if _FLAG.match(arg):
            mask_next = True
    return out


def redact_text(text: str) -> str:
    """Mask secrets inside decoded argument text (quoted strings, as in execve's argv)."""
    text = _TEXT_ASSIGN.sub(rf"\g<1>{MASK}\g<3>", text)
    text = _TEXT_HEADER.sub(rf"\g<1>{MASK}\g<3>", text)
    return _URL_CRED.sub(rf"\g<1>{MASK}\g<3>", text)
