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

import functools
import re

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

MASK = "[REDACTED]"
# Every expression below needs one of these words (case-insensitively), "://" or a token
# prefix to match, so text with none of them is returned without compiling or running
# any expression: compiling them costs more than the rest of a short trace's redaction.
_WORD_LIST = ("password", "passwd", "pwd", "secret", "token", "key", "credential", "auth", "cookie", "session")
_SHAPE_MARKS = (
    "://", "AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA", "ANVA", "AIPA",
    "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "xox", "glpat-", "npm_", "sk_live_",
)
_WORDS = (
    r"(?:password|passwd|pwd|secret|token|key|credentials?|auth|authorization|cookie|session)"
)
_NAME = rf"[\w.-]*{_WORDS}[\w.-]*"
# Inside decoded text, arguments are double-quoted C strings (\" escapes a quote).
_Q = r'(?:[^"\\]|\\.)*'


def _suspect(text: str) -> bool:
    """False only when no expression below can match ``text``. Non-ASCII text always goes
    through them: ignoring case, the expressions match letters lower() does not fold
    (the Kelvin sign as k, a dotless i as i)."""
    if not text.isascii():
        return True
    for mark in _SHAPE_MARKS:
        if mark in text:
            return True
    low = text.lower()
    return any(word in low for word in _WORD_LIST)


class _Patterns:
    def __init__(self) -> None:
        # --password=x, token=x, API_KEY=x (the value runs to the end of the argument)
        self.assign = re.compile(rf"(?is)^(-{{0,2}}{_NAME}=)(.+)$")
        # "Authorization: Bearer x", "X-Api-Key: x" (header-style, as passed to curl -H)
        self.header = re.compile(rf"(?is)^([\w-]*{_WORDS}[\w-]*\s*:\s*)(.+)$")
        # --password x (the secret is the next argument)
        self.flag = re.compile(rf"(?i)^-{{1,2}}{_NAME}$")
        # scheme://user:secret@host
        self.url_cred = re.compile(r"(?i)([a-z][a-z0-9+.-]*://[^/\s:@\"]+:)([^@\s\"/]+)(@)")
        # Credentials recognisable by their shape alone.
        self.tokens = re.compile(
            r"\b(?:(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[0-9A-Z]{16}"
            r"|(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{20,}"
            r"|github_pat_[A-Za-z0-9_]{20,}"
            r"|xox[abposr]-[A-Za-z0-9-]{8,}"
            r"|glpat-[A-Za-z0-9_-]{16,}"
            r"|npm_[A-Za-z0-9]{30,}"
            r"|sk_live_[A-Za-z0-9]{16,})"
        )
        self.text_assign = re.compile(rf'(?i)("-{{0,2}}{_NAME}=)({_Q})(")')
        self.text_header = re.compile(rf'(?i)("[\w-]*{_WORDS}[\w-]*\s*:\s*)({_Q})(")')
        self.text_flag = re.compile(rf'(?i)("-{{1,2}}{_NAME}",\s*")({_Q})(")')
        # "password": "x" in JSON text (also with escaped quotes, as JSON nested in a string)
        self.json_pair = re.compile(rf'(?i)(\\*"{_NAME}\\*"\s*:\s*\\*")((?:[^"\\]|\\[^"])*)(\\*")')


@functools.cache
def _re() -> _Patterns:
    return _Patterns()


def _shapes(text: str) -> str:
    p = _re()
    text = p.url_cred.sub(rf"\g<1>{MASK}\g<3>", text)
    return p.tokens.sub(MASK, text)


def redact_arg(arg: str) -> str:
    """One argument (or attribute value) with its secret part masked."""
    if not _suspect(arg):
        return arg
    p = _re()
    m = p.assign.match(arg) or p.header.match(arg)
    if m:
        return m.group(1) + MASK
    return redact_text(arg)


def _is_flag(arg: str) -> bool:
    return _suspect(arg) and _re().flag.match(arg) is not None


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
        if _is_flag(arg):
            mask_next = True
    return out


def redact_text(text: str) -> str:
    """Mask secrets inside free text: decoded syscall arguments (quoted strings, as in
    execve's argv), stack lines, JSON."""
    if not text or not _suspect(text):
        return text
    p = _re()
    text = p.text_assign.sub(rf"\g<1>{MASK}\g<3>", text)
    text = p.text_header.sub(rf"\g<1>{MASK}\g<3>", text)
    text = p.text_flag.sub(rf"\g<1>{MASK}\g<3>", text)
    text = p.json_pair.sub(rf"\g<1>{MASK}\g<3>", text)
    return _shapes(text)


def redact(value: Any, key: str = "") -> Any:
    """The one redaction entry point: a string (an argument or free text), a list (argv),
    or a mapping of attributes; ``key`` is the attribute name the value is stored under
    (a secret-looking name masks the whole value). Other values are returned as they are."""
    if key and _is_flag("--" + key):
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
