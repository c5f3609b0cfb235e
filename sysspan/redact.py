"""Keep secrets out of everything sysspan writes: one entry point, :func:`redact`.

Every output that can carry argv, headers or user-supplied values goes through it: the run
and process spans' ``process.command_args``, execve/execveat ``syscall.args`` (on spans and
in ``-o`` lines), ``-k`` stack lines, decision inputs and results, and ``sysspan span
--attr`` attributes. The JSONL file and OTLP get the same spans, so both are covered.

What is masked (the value becomes ``[REDACTED]``, the name stays so the trace still says
what was passed):

* ``--password=x``, ``token=x``, ``API_KEY=x``: an argument ``NAME=value`` or ``--NAME=value``
  whose name contains one of the secret words (password, passwd, secret, token, key,
  credential, auth, cookie, session);
* ``--password x``: the argument after such a flag;
* ``Authorization: Bearer x``, ``Cookie: a=b``: header-style arguments (``curl -H``);
* ``scheme://user:secret@host``: the password of URL userinfo;
* AWS access key ids (``AKIA…``/``ASIA…``) and tokens with a well-known prefix
  (``ghp_``, ``github_pat_``, ``xoxb-``, ``glpat-``, ...), wherever they appear;
* ``"password": "x"`` inside JSON text (decision inputs).

Environment variables are never recorded at all.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "[REDACTED]"
_WORDS = (
    r"(?:password|passwd|pwd|secret|token|key|credentials?|auth|authorization|cookie|session)"
)
_NAME = rf"[\w.-]*{_WORDS}[\w.-]*"
# --password=x, token=x, API_KEY=x (the value runs to the end of the argument)
_ASSIGN = re.compile(rf"(?is)^(-{{0,2}}{_NAME}=)(.+)$")
# "Authorization: Bearer x", "X-Api-Key: x" (header-style, as passed to curl -H)
_HEADER = re.compile(rf"(?is)^([\w-]*{_WORDS}[\w-]*\s*:\s*)(.+)$")
# --password x (the secret is the next argument)
_FLAG = re.compile(rf"(?i)^-{{1,2}}{_NAME}$")
# scheme://user:secret@host
_URL_CRED = re.compile(r"(?i)([a-z][a-z0-9+.-]*://[^/\s:@\"]+:)([^@\s\"/]+)(@)")
# Credentials recognisable by their shape alone.
_TOKENS = re.compile(
    r"\b(?:(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[0-9A-Z]{16}"
    r"|(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{20,}"
    r"|github_pat_[A-Za-z0-9_]{20,}"
    r"|xox[abposr]-[A-Za-z0-9-]{8,}"
    r"|glpat-[A-Za-z0-9_-]{16,}"
    r"|npm_[A-Za-z0-9]{30,}"
    r"|sk_live_[A-Za-z0-9]{16,})"
)
# Inside decoded text, arguments are double-quoted C strings (\" escapes a quote).
_Q = r'(?:[^"\\]|\\.)*'
_TEXT_ASSIGN = re.compile(rf'(?i)("-{{0,2}}{_NAME}=)({_Q})(")')
_TEXT_HEADER = re.compile(rf'(?i)("[\w-]*{_WORDS}[\w-]*\s*:\s*)({_Q})(")')
_TEXT_FLAG = re.compile(rf'(?i)("-{{1,2}}{_NAME}",\s*")({_Q})(")')
# "password": "x" in JSON text (also with escaped quotes, as JSON nested in a string)
_JSON_PAIR = re.compile(rf'(?i)(\\*"{_NAME}\\*"\s*:\s*\\*")((?:[^"\\]|\\[^"])*)(\\*")')


def _shapes(text: str) -> str:
    text = _URL_CRED.sub(rf"\g<1>{MASK}\g<3>", text)
    return _TOKENS.sub(MASK, text)


def redact_arg(arg: str) -> str:
    """One argument (or attribute value) with its secret part masked."""
    m = _ASSIGN.match(arg) or _HEADER.match(arg)
    if m:
        return m.group(1) + MASK
    return redact_text(arg)


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
    """Mask secrets inside free text: decoded syscall arguments (quoted strings, as in
    execve's argv), stack lines, JSON."""
    if not text:
        return text
    text = _TEXT_ASSIGN.sub(rf"\g<1>{MASK}\g<3>", text)
    text = _TEXT_HEADER.sub(rf"\g<1>{MASK}\g<3>", text)
    text = _TEXT_FLAG.sub(rf"\g<1>{MASK}\g<3>", text)
    text = _JSON_PAIR.sub(rf"\g<1>{MASK}\g<3>", text)
    return _shapes(text)


def redact(value: Any, key: str = "") -> Any:
    """The one redaction entry point: a string (an argument or free text), a list (argv),
    or a mapping of attributes; ``key`` is the attribute name the value is stored under
    (a secret-looking name masks the whole value). Other values are returned as they are."""
    if key and _FLAG.match("--" + key):
        return MASK if isinstance(value, (str, bytes, list, tuple)) or value else value
    if isinstance(value, str):
        return redact_arg(value)
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, str) for v in value):
            return redact_argv(list(value))
        return [redact(v) for v in value]
    if isinstance(value, dict):
        return {k: redact(v, k if isinstance(k, str) else "") for k, v in value.items()}
    return value
