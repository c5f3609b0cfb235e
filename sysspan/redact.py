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


# What a text needs to contain before any pattern above can match, checked first because
# most texts (decision inputs, paths) hold none of it and the patterns cost microseconds:
# every pattern but two needs one of the secret words (the same case-insensitive _WORDS,
# so non-ASCII case variants such as the Kelvin sign for "k" count too); _URL_CRED needs
# "://"; each _TOKENS alternative starts with one of these case-sensitive prefixes.
_ANY_WORD = re.compile(rf"(?i){_WORDS}")
_ASCII_WORDS = ("passw", "pwd", "secret", "token", "key", "credential", "auth", "cookie", "session")
_TOKEN_START = re.compile(
    r"A(?:KIA|SIA|GPA|IDA|ROA|NPA|NVA|IPA)|gh[pousr]_|github_pat_|xox[abposr]-|glpat-|npm_|sk_live_"
)


def _has_word(text: str) -> bool:
    if text.isascii():  # ASCII text: lowercasing is exactly the patterns' (?i)
        low = text.lower()
        return any(w in low for w in _ASCII_WORDS)
    return _ANY_WORD.search(text) is not None


def _shapes(text: str) -> str:
    if "://" in text:
        text = _URL_CRED.sub(rf"\g<1>{MASK}\g<3>", text)
    if _TOKEN_START.search(text) is None:
        return text
    return _TOKENS.sub(MASK, text)


def redact_arg(arg: str) -> str:
    """One argument (or attribute value) with its secret part masked."""
    if not _has_word(arg):
        return _shapes(arg)
    m = _ASSIGN.match(arg) or _HEADER.match(arg)
    if m:
        return m.group(1) + MASK
    return _redact_words(arg)


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
    if not _has_word(text):
        return _shapes(text)
    return _redact_words(text)


def _redact_words(text: str) -> str:
    """``redact_text`` of a text that holds a secret word."""
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
