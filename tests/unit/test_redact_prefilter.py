"""redact() skips its expressions for text with no secret word, "://" or token prefix in it
(compiling them is a visible part of start-up). That shortcut must never let a secret
through: on any text it declines, no expression may find anything."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sysspan import redact as r
from sysspan.redact import MASK, redact, redact_text

# Fragments that build near misses: parts of the words, their case variants, separators,
# quotes and escapes as they appear in decoded execve text and JSON.
FRAGMENTS = [
    "pass", "word", "PassWord", "passwd", "PWD", "secr", "et", "tok", "en", "KEY", "ke", "y",
    "credential", "creds", "auth", "AUTH", "cookie", "sess", "ion", "=", ":", " ", "-", "--",
    "_", ".", '"', '\\"', ",", "@", "://", ":/", "//", "AKIA", "AKI", "ghp_", "ghp", "xox",
    "xoxb-", "glpat-", "npm_", "sk_live_", "github_pat_", "0123456789ABCDEF", "abcdefghij",
    "K", "ı", "ſ", "é", "https", "user", "host",
]
texts = st.lists(st.sampled_from(FRAGMENTS), max_size=12).map("".join)


def _full(text: str) -> list[str]:
    """Names of the expressions that find something in ``text``."""
    p = r._re()
    found = [name for name in ("assign", "header", "flag") if getattr(p, name).match(text)]
    found += [name for name in ("url_cred", "tokens", "text_assign", "text_header", "text_flag", "json_pair")
              if getattr(p, name).search(text)]
    return found


@settings(max_examples=3000, deadline=None)
@given(texts)
def test_declined_text_matches_no_expression(text: str) -> None:
    if not r._suspect(text):
        assert _full(text) == [], text


def test_secrets_are_still_masked() -> None:
    assert redact(["--password", "x1", "--Api-Token=x2", "https://u:x3@h/", "plain"]) == [
        "--password", MASK, f"--Api-Token={MASK}", f"https://u:{MASK}@h/", "plain"]
    assert redact_text('"-H", "Cookie: x4"') == f'"-H", "Cookie: {MASK}"'
    # Non-ASCII letters the expressions fold ignoring case: the shortcut must not decline.
    assert redact("\u017fecret=x5") == f"\u017fecret={MASK}"
    assert redact("sess\u0131on=x6") == f"sess\u0131on={MASK}"


def test_plain_text_compiles_nothing() -> None:
    """The shortcut is what keeps start-up from compiling the expressions: a run whose
    arguments hold nothing secret-looking must not need them."""
    for text in ("/usr/bin/true", '"/usr/bin/python3", ["python3", "-c", "import json"]', "ls -la /"):
        assert not r._suspect(text), text
