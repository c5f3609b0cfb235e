"""The redaction's pre-check (skip the patterns when a text holds none of their anchors)
changes no output: every text masks exactly as when all patterns run, including the
secrets corpus of tests/integration/test_redaction.py and non-ASCII case variants that the
patterns' case-insensitive matching accepts."""

from __future__ import annotations

import json
import random

import pytest

from sysspan import redact as r
from tests.integration.test_redaction import ARGS, CORPUS


def _all_patterns_text(text: str) -> str:
    """redact_text with every pattern run, whatever the text holds."""
    if not text:
        return text
    p = r._re()
    for pattern in (p.text_assign, p.text_header, p.text_flag, p.json_pair, p.url_cred):
        text = pattern.sub(rf"\g<1>{r.MASK}\g<3>", text)
    return p.tokens.sub(r.MASK, text)


def _all_patterns_arg(arg: str) -> str:
    m = r._re().assign.match(arg) or r._re().header.match(arg)
    return m.group(1) + r.MASK if m else _all_patterns_text(arg)


WORDS = ["password", "passwd", "pwd", "secret", "token", "key", "credential", "credentials", "auth",
         "authorization", "cookie", "session"]
# characters the patterns' (?i) matches for an ASCII letter: the Kelvin sign (k), the long
# s (s), the dotted capital I (i)
UNICODE_CASE = {"k": "\u212a", "s": "\u017f", "i": "\u0130"}


def _variants(word: str) -> list[str]:
    out = [word, word.upper(), word.title(), word[::2].upper() + word[1::2]]
    for ascii_letter, other in UNICODE_CASE.items():
        if ascii_letter in word:
            out.append(word.replace(ascii_letter, other, 1))
    return out


def _texts() -> list[str]:
    texts = list(ARGS) + [s for _, s in CORPUS]
    texts.append('"/bin/sh", ["sh", "--password", "x-SEKRIT", "--token=y"], 0x1 /* 3 vars */')
    for word in WORDS:
        for w in _variants(word):
            texts += [
                f"{w}=v-SEKRIT", f"--{w}=v-SEKRIT", f"MY_{w}_X=v", f"X-{w}: Bearer v-SEKRIT",
                f'["sh", "--{w}", "v-SEKRIT"]', f'"--{w}=v-SEKRIT"', f'"{w}: v"',
                json.dumps({w: "v-SEKRIT", "n": 1}), json.dumps(json.dumps({w: "v-SEKRIT"})),
                json.dumps({"user": w}), f"plain words, {w} inside",
            ]
    texts += ["https://alice:pw-SEKRIT@example.com/x", "git+ssh://u:p@h", "HTTP://A:B@C", "no url: a:b@c",
              "xoxb-123456789012-abcdefghijkl", "id AKIAIOSFODNN7EXAMPLE.", "akiaiosfodnn7example",
              "glpat-abcdefghijklmnop1234", "npm_" + "a" * 30, "sk_live_" + "b" * 16, "ghs_" + "c" * 20,
              "github_pat_" + "d" * 22, "", "\u00e9t\u00e9", '"hello"', "null", "[1,2,3]"]
    rng = random.Random(13)
    pieces = ["a", "Z", "=", ":", " ", '"', "\\", "-", "_", "/", "@", "://", "k", "\u212a", "\u017f",
              "AKIA", "ghp_", "xoxb-", "0123456789ABCDEF", "pass", "word", "tok", "en", "s3cr", "et"]
    texts += ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 30))) for _ in range(3000)]
    return texts


@pytest.mark.parametrize("chunk", range(4))
def test_precheck_changes_no_output(chunk) -> None:
    texts = _texts()
    for text in texts[chunk::4]:
        assert r.redact_text(text) == _all_patterns_text(text), text
        assert r.redact_arg(text) == _all_patterns_arg(text), text


def test_every_corpus_secret_is_still_masked() -> None:
    out = repr(r.redact(ARGS))
    assert [s for _, s in CORPUS if s in out] == []
    # and the unicode case variants really reach the patterns
    assert r.redact_arg("\u212aey=v-SEKRIT") == "\u212aey=" + r.MASK
