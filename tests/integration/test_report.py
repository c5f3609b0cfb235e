"""``sysspan report``: real traces rendered, loaded in headless Chromium, and checked against
what the trace files hold (counted here with plain ``json``, not sysspan's reader)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from sysspan.exporters.otlp_json import encode_line
from sysspan.model import ResourceSpans, Span, StatusCode
from sysspan.tracefile import iter_trace_file
from tests.tracehelpers import REPO, load_spans, sysspan

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="ptrace is Linux-only")

MAX_HTML_BYTES = 5 * 1024 * 1024
# Measured on a quiet 2-core machine: 1M spans ~27 s (4 s writing the file, ~21 s in
# `sysspan report`, nearly all JSON decoding; RSS flat at ~45 MB), 500k ~14 s. The default
# keeps the test well under 30 s on a loaded CI machine; SYSSPAN_BIG_SPANS=1000000 runs
# the full-size check.
BIG_SPANS = int(os.environ.get("SYSSPAN_BIG_SPANS", "500000"))

CHROMIUM = next(
    (p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p),
    None,
)


# --------------------------------------------------------------------------- helpers


def counts_of(path) -> dict[str, int]:
    """What a report must show, counted independently from the raw JSON."""
    spans = load_spans(path)
    syscalls = [s for s in spans if s.is_syscall]
    return {
        "spans": len(spans),
        "processes": sum(1 for s in spans if s.is_process and "decision.id" not in s.attrs),
        "syscalls": len(syscalls),
        "errors": sum(1 for s in syscalls if "error.type" in s.attrs or s.status.get("code") == 2),
        "decisions": sum(1 for s in spans if "decision.id" in s.attrs),
    }


class _Dom(HTMLParser):
    """Text and attributes of elements with an id (enough to read the report's DOM)."""

    def __init__(self) -> None:
        super().__init__()
        self.attrs: dict[str, dict[str, str]] = {}
        self.text: dict[str, str] = {}
        self._open: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        d = {k: v or "" for k, v in attrs}
        ident = d.get("id")
        if ident:
            self.attrs[ident] = d
            self.text.setdefault(ident, "")
        if tag not in ("br", "img", "meta", "link", "input", "hr", "wbr", "col"):
            self._open.append((tag, ident))

    def handle_endtag(self, tag):
        while self._open:
            t, _ = self._open.pop()
            if t == tag:
                break

    def handle_data(self, data):
        for _, ident in self._open:
            if ident:
                self.text[ident] += data


def parse_dom(text: str) -> _Dom:
    dom = _Dom()
    dom.feed(text)
    return dom


def chromium(tmp_path: Path, url: str, *args: str, timeout: int = 120):
    if CHROMIUM is None:
        if os.environ.get("SYSSPAN_NO_BROWSER"):
            pytest.skip("SYSSPAN_NO_BROWSER set")
        pytest.fail("chromium not found: `make test` installs it (apt-get install chromium)")
    profile = tmp_path / f"chromium-profile-{time.monotonic_ns()}"
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
        # In containers the separate GPU process dies and takes the browser with it.
        "--in-process-gpu",
        "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
        "--enable-logging=stderr", "--v=0", f"--user-data-dir={profile}", *args, url,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    shutil.rmtree(profile, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def load_in_browser(tmp_path: Path, html_path: Path) -> _Dom:
    """Render the page headless and return its DOM after the scripts ran; fail on any
    script error (collected by the page into #js-errors, or logged by Chromium).

    The ``#selftest`` fragment makes the page drive each interaction once (wheel zoom,
    drag, double-click, buttons, hovering, a flame-graph click, sorting every column), so
    the handlers are proven too, not only the first paint."""
    url = html_path.resolve().as_uri() + "#selftest"
    proc = chromium(tmp_path, url, "--window-size=1400,1000", "--dump-dom")
    dom = parse_dom(proc.stdout)
    assert dom.text.get("js-errors", "").strip() == "", dom.text["js-errors"]
    assert "hidden" in dom.attrs["js-errors"]
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, console
    assert dom.text.get("render-status") == "ok"
    assert dom.text.get("selftest") == "done"
    # the self-test ends zoomed in on the timeline, and zoomed into a flame-graph frame
    v0, v1, total, _scroll = map(int, dom.attrs["tl-canvas"]["data-view"].split())
    assert 0 < v1 - v0 < total
    assert dom.text["flame-crumbs"].startswith("all › ")
    return dom


def shown_counts(dom: _Dom) -> dict[str, int]:
    out = {}
    for key in ("spans", "processes", "syscalls", "errors", "decisions"):
        attrs = dom.attrs[f"count-{key}"]
        value = int(attrs["data-value"])
        assert int(dom.text[f"count-{key}"].replace(",", "")) == value
        out[key] = value
    return out


def report(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return sysspan("report", *args, cwd=cwd)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def real_trace(tmp_path_factory) -> Path:
    """A real trace: a shell running ls and cat, one cat argument missing (ENOENT)."""
    d = tmp_path_factory.mktemp("real")
    out = d / "trace.jsonl"
    proc = sysspan(
        "--trace-file", str(out), "-f", "--",
        "sh", "-c", "ls -la / >/dev/null; cat /etc/hostname /nonexistent >/dev/null",
        cwd=d,
    )  # fmt: skip
    assert out.exists(), proc.stderr
    return out


@pytest.fixture(scope="module")
def decision_trace(real_trace, tmp_path_factory) -> Path:
    """The real trace plus decisions and source attributes: each process gets a timed
    ``config::load`` decision around a few of its syscalls (which become its children),
    and every openat gets ``code.*`` attributes with a two-frame stack."""
    d = tmp_path_factory.mktemp("decisions")
    out = d / "decisions.jsonl"
    batches = list(iter_trace_file(real_trace))
    spans = [s for b in batches for s in b.spans]
    procs = [s for s in spans if "process.pid" in s.attributes and "syscall.count" not in s.attributes
             and "syscall.name" not in s.attributes]  # fmt: skip
    next_id = max(s.span_id for s in spans) + 1
    decisions = []
    for proc in procs:
        mine = sorted((s for s in spans if s.parent_id == proc.span_id and "syscall.name" in s.attributes),
                      key=lambda s: s.start_ns)  # fmt: skip
        window = mine[2:8]
        if len(window) < 2:
            continue
        dec = Span(proc.trace_id, next_id, proc.span_id, "config::load",
                   window[0].start_ns - 500, window[-1].end_ns + 500, attributes={
                       "decision.id": f"{0xC0FFEE00 + next_id:016x}",
                       "decision.category": "config", "decision.name": "load",
                       "decision.input": "path=/etc/app.conf", "decision.result": "defaults",
                       "code.file.path": "/src/app.c", "code.line.number": 7,
                   })  # fmt: skip
        next_id += 1
        for s in window:
            s.parent_id = dec.span_id
        decisions.append(dec)
    assert decisions
    for s in spans:
        if s.attributes.get("syscall.name") == "openat":
            s.attributes.update({
                "code.function.name": "open_config",
                "code.file.path": "/src/app.c",
                "code.line.number": 42,
                "code.stacktrace": "open_config at /src/app.c:42\nmain at /src/app.c:90",
            })
    with open(out, "w", encoding="utf-8") as fh:
        for b in batches:
            fh.write(encode_line(b) + "\n")
        fh.write(encode_line(ResourceSpans(batches[0].resource, decisions)) + "\n")
    return out


# --------------------------------------------------------------------------- tests


def test_report_of_a_real_trace_in_chromium(real_trace, tmp_path):
    out = tmp_path / "report.html"
    proc = report(str(real_trace), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert str(out) in proc.stdout and len(proc.stdout.strip().splitlines()) == 1
    expected = counts_of(real_trace)
    assert expected["errors"] >= 1 and expected["processes"] >= 3  # sh, ls, cat
    page = out.read_text(encoding="utf-8")
    assert "http://" not in page and "https://" not in page and "<link" not in page
    dom = load_in_browser(tmp_path, out)
    assert shown_counts(dom) == expected
    assert "decisions" not in dom.attrs  # no decision section without decisions
    assert "ENOENT" in dom.text["table-syscalls"]
    assert "/nonexistent" in dom.text["table-slowest"] or "openat" in dom.text["table-syscalls"]
    procs = dom.text["table-processes"]
    assert "ls" in procs and "cat" in procs
    assert "process → decision → syscall" in dom.text["flame-by"]


def test_report_with_decisions_and_source_in_chromium(decision_trace, tmp_path):
    out = tmp_path / "report.html"
    proc = report(str(decision_trace), "-o", str(out), "--title", "decisions & source")
    assert proc.returncode == 0, proc.stderr
    expected = counts_of(decision_trace)
    assert expected["decisions"] >= 3
    dom = load_in_browser(tmp_path, out)
    assert shown_counts(dom) == expected
    assert dom.text["title"] == "decisions & source"
    table = dom.text["table-decisions"]
    assert "config::load" in table and "app.c:7" in table
    assert "source stack" in dom.text["flame-by"]
    # the slowest table shows the source line of any openat that made the top list
    spans = load_spans(decision_trace)
    top = sorted((s for s in spans if s.is_syscall), key=lambda s: s.end - s.start, reverse=True)
    if any(s.name == "openat" for s in top[:100]):
        assert "open_config() app.c:42" in dom.text["table-slowest"]


def test_folded_and_perfetto_outputs(real_trace, tmp_path):
    folded = tmp_path / "out.folded"
    perfetto = tmp_path / "out.perfetto.json"
    proc = report(str(real_trace), "-o", "-", "--folded", str(folded), "--perfetto", str(perfetto))
    assert proc.returncode == 0, proc.stderr
    assert str(folded) in proc.stdout and str(perfetto) in proc.stdout
    spans = load_spans(real_trace)
    syscalls = [s for s in spans if s.is_syscall]
    total_ns = sum(s.end - s.start for s in syscalls)

    lines = folded.read_text(encoding="utf-8").splitlines()
    assert lines
    values = []
    roots = {s.name for s in spans if s.is_process}
    for line in lines:
        m = re.fullmatch(r"(\S[^\n]*?) (\d+)", line)
        assert m, line
        frames = m.group(1).split(";")
        assert all(frames), line
        assert frames[0] in roots  # stacks start at a process
        assert frames[-1] in {s.name for s in syscalls}
        values.append(int(m.group(2)))
    assert sum(values) == (total_ns + 500) // 1000  # µs, rounded half up

    doc = json.loads(perfetto.read_text(encoding="utf-8"))
    events = doc["traceEvents"]
    base = int(doc["otherData"]["base_unix_ns"])
    assert base == min(s.start for s in spans)
    by_id = {e["args"]["span.id"]: e for e in events if e["ph"] == "X"}
    x_syscalls = [e for e in events if e["ph"] == "X" and "syscall" in e["cat"].split(",")]
    assert len(x_syscalls) == len(syscalls)
    assert {e["cat"] for e in events if e["ph"] == "X"} >= {"process", "run", "syscall,file"}
    pids = {s.span_id: s.attrs["process.pid"] for s in spans if s.is_process}
    for s in syscalls:
        e = by_id[s.span_id]
        assert e["name"] == s.name
        assert abs(e["ts"] - (s.start - base) / 1000) < 0.001
        assert abs(e["dur"] - (s.end - s.start) / 1000) < 0.001
        assert e["tid"] == s.attrs["thread.id"]
        assert e["pid"] == pids[s.parent_id]
    meta = {(e["name"], e["pid"]) for e in events if e["ph"] == "M"}
    assert {("process_name", pid) for pid in pids.values()} <= meta


def test_several_files_make_one_report(real_trace, decision_trace, tmp_path):
    out = tmp_path / "both.html"
    proc = report(str(real_trace), str(decision_trace), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    a, b = counts_of(real_trace), counts_of(decision_trace)
    page = out.read_text(encoding="utf-8")
    for key in ("spans", "syscalls", "decisions"):
        assert f'id="count-{key}" data-value="{a[key] + b[key]}"' in page


def test_default_output_name(real_trace, tmp_path):
    proc = report(str(real_trace), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "sysspan-report.html").stat().st_size > 10_000


@pytest.mark.parametrize(
    ("args", "rc", "message"),
    [
        (["{missing}"], 1, "no such file"),
        (["{empty}"], 1, "no spans"),
        (["{garbage}"], 1, "not valid JSON"),
        (["{trace}", "-o", "{tmp}/no/such/dir/r.html"], 2, "does not exist"),
        (["{trace}", "-o", "-"], 2, "--folded or --perfetto"),
        (["{trace}", "-o", "{trace}"], 2, "both an input trace and an output"),
        (["{trace}", "-o", "{tmp}/a", "--folded", "{tmp}/a"], 2, "different files"),
    ],
)
def test_errors_are_one_line(real_trace, tmp_path, args, rc, message):
    (tmp_path / "empty.jsonl").write_text("\n")
    (tmp_path / "garbage.jsonl").write_text("{not json\n")
    fill = {
        "missing": str(tmp_path / "missing.jsonl"),
        "empty": str(tmp_path / "empty.jsonl"),
        "garbage": str(tmp_path / "garbage.jsonl"),
        "trace": str(real_trace),
        "tmp": str(tmp_path),
    }
    proc = report(*(a.format(**fill) for a in args), cwd=tmp_path)
    assert proc.returncode == rc, proc.stderr
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("sysspan: "), err
    assert message in err
    assert "Traceback" not in proc.stderr


# --------------------------------------------------------------------------- scale


def write_big_trace(
    path: Path, n_spans: int, n_procs: int = 200, *, stacks: bool = False, decisions: bool = False
) -> dict[str, int]:
    """A synthetic trace of ``n_spans`` spans written as JSON text directly (fast): one run,
    ``n_procs`` processes, with ``decisions`` one decision per process around its first ten
    syscalls, the rest syscalls (1 in 97 failing; with ``stacks`` each has one of ~5,000
    distinct ``code.stacktrace`` values), 2,000 spans per line."""
    trace_id = "5" * 32
    t0 = 1_700_000_000_000_000_000
    n_dec = n_procs if decisions else 0
    n_sys = n_spans - 1 - n_procs - n_dec
    names = ["read", "write", "openat", "close", "mmap", "fstat", "futex", "getdents64",
             "connect", "rt_sigaction", "brk", "statx"]  # fmt: skip
    per_proc = n_sys // n_procs + 1
    proc_len = per_proc * 3_000
    run_id = "00000000000000aa"
    head = '{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"big"}}]},"scopeSpans":[{"scope":{"name":"sysspan"},"spans":['
    tail = "]}]}]}\n"
    errors = 0
    with open(path, "w", encoding="utf-8") as fh:
        buf: list[str] = []

        def flush():
            if buf:
                fh.write(head + ",".join(buf) + tail)
                buf.clear()

        for i in range(n_sys):
            p = i // per_proc
            k = i % per_proc
            start = t0 + p * proc_len // 2 + (i % per_proc) * 3_000
            dur = 200 + (i * 7919) % 2_500
            name = names[i % len(names)]
            tid = 1000 + p
            fail = i % 97 == 0
            attrs = (
                f'{{"key":"syscall.name","value":{{"stringValue":"{name}"}}}},'
                f'{{"key":"syscall.args","value":{{"stringValue":"3, 0x7ffd{i:08x}, 4096"}}}},'
                f'{{"key":"syscall.return","value":{{"intValue":"{-2 if fail else 4096}"}}}},'
                f'{{"key":"thread.id","value":{{"intValue":"{tid}"}}}}'
            )
            if stacks:
                attrs += (
                    f',{{"key":"code.stacktrace","value":{{"stringValue":"step{i % 4999} at /src/s.c:{i % 61}'
                    f'\\nphase{i % 37} at /src/p.c:9\\nmain at /src/m.c:3"}}}}'
                )
            parent = 0x100 + p
            if decisions and k < 10:
                parent = 0x80000000 + p
            status = "{}"
            if fail:
                attrs += ',{"key":"error.type","value":{"stringValue":"ENOENT"}}'
                status = '{"code":2}'
                errors += 1
            buf.append(
                f'{{"traceId":"{trace_id}","spanId":"{0x10000 + i:016x}","parentSpanId":"{parent:016x}",'
                f'"name":"{name}","kind":1,"startTimeUnixNano":"{start}","endTimeUnixNano":"{start + dur}",'
                f'"attributes":[{attrs}],"status":{status}}}'
            )
            if len(buf) == 2_000:
                flush()
        for p in range(n_dec):
            start = t0 + p * proc_len // 2 - 100
            buf.append(
                f'{{"traceId":"{trace_id}","spanId":"{0x80000000 + p:016x}","parentSpanId":"{0x100 + p:016x}",'
                f'"name":"plan::step","kind":1,"startTimeUnixNano":"{start}","endTimeUnixNano":"{start + 31_000}",'
                f'"attributes":[{{"key":"decision.id","value":{{"stringValue":"00000000000000{p % 7:02x}"}}}},'
                f'{{"key":"decision.category","value":{{"stringValue":"plan"}}}},'
                f'{{"key":"decision.name","value":{{"stringValue":"step{p % 7}"}}}},'
                f'{{"key":"decision.result","value":{{"stringValue":"r{p}"}}}}],"status":{{}}}}'
            )
        for p in range(n_procs):
            start = t0 + p * proc_len // 2 - 1_000
            buf.append(
                f'{{"traceId":"{trace_id}","spanId":"{0x100 + p:016x}","parentSpanId":"{run_id}",'
                f'"name":"cc","kind":1,"startTimeUnixNano":"{start}","endTimeUnixNano":"{start + proc_len + 2_000}",'
                f'"attributes":[{{"key":"process.pid","value":{{"intValue":"{1000 + p}"}}}},'
                f'{{"key":"process.parent_pid","value":{{"intValue":"999"}}}},'
                f'{{"key":"process.executable.name","value":{{"stringValue":"cc"}}}}],"status":{{}}}}'
            )
        end = t0 + n_procs * proc_len
        buf.append(
            f'{{"traceId":"{trace_id}","spanId":"{run_id}","name":"make","kind":1,'
            f'"startTimeUnixNano":"{t0 - 5_000}","endTimeUnixNano":"{end}",'
            f'"attributes":[{{"key":"syscall.count","value":{{"intValue":"{n_sys}"}}}},'
            f'{{"key":"process.pid","value":{{"intValue":"999"}}}}],"status":{{}}}}'
        )
        flush()
    return {"spans": n_spans, "processes": n_procs, "syscalls": n_sys, "errors": errors,
            "decisions": n_dec}  # fmt: skip


@pytest.mark.slow
def test_big_trace_stays_small_and_correct(tmp_path):
    path = tmp_path / "big.jsonl"
    t = time.monotonic()
    expected = write_big_trace(path, BIG_SPANS)
    generated = time.monotonic() - t
    out = tmp_path / "big.html"
    t = time.monotonic()
    proc = report(str(path), "-o", str(out))
    reported = time.monotonic() - t
    assert proc.returncode == 0, proc.stderr
    size = out.stat().st_size
    assert size <= MAX_HTML_BYTES, size
    page = out.read_text(encoding="utf-8")
    for key, value in expected.items():
        assert f'id="count-{key}" data-value="{value}"' in page, key
    dom = load_in_browser(tmp_path, out)
    assert shown_counts(dom) == expected
    print(f"\n{BIG_SPANS} spans: generated in {generated:.1f}s, reported in {reported:.1f}s, "
          f"HTML {size / 1e6:.2f} MB")  # fmt: skip


@pytest.mark.slow
def test_wide_trace_hits_every_cap(tmp_path):
    """Many processes, thousands of distinct stacks, decisions: every list is capped."""
    path = tmp_path / "wide.jsonl"
    expected = write_big_trace(path, 120_000, n_procs=3_000, stacks=True, decisions=True)
    out = tmp_path / "wide.html"
    folded = tmp_path / "wide.folded"
    proc = report(str(path), "-o", str(out), "--folded", str(folded))
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size <= MAX_HTML_BYTES
    dom = load_in_browser(tmp_path, out)
    assert shown_counts(dom) == expected
    assert "plan::step" in dom.text["table-decisions"]
    data = json.loads(re.search(r'<script type="application/json" id="sysspan-data">(.*?)</script>',
                                out.read_text(encoding="utf-8"), re.S).group(1))  # fmt: skip
    assert len(data["rows"]) <= 1_000 < expected["processes"]
    assert len(data["flame"]["name"]) <= 4_000
    # Every distinct stack is in the folded output (only the page prunes).
    assert len(folded.read_text().splitlines()) > 4_000


def test_page_error_collector_reports_script_errors(decision_trace, tmp_path):
    """The no-errors checks above mean something: a broken script is caught and shown."""
    out = tmp_path / "report.html"
    assert report(str(decision_trace), "-o", str(out)).returncode == 0
    page = out.read_text(encoding="utf-8")
    out.write_text(page.replace("</body>", "<script>null.boom();</script></body>"), encoding="utf-8")
    proc = chromium(tmp_path, out.resolve().as_uri(), "--dump-dom")
    dom = parse_dom(proc.stdout)
    assert "boom" in dom.text["js-errors"] or "null" in dom.text["js-errors"]
    assert "hidden" not in dom.attrs["js-errors"]


def test_screenshot_renders(decision_trace, tmp_path):
    """The page paints (a non-trivial PNG) at the README's screenshot size."""
    out = tmp_path / "report.html"
    assert report(str(decision_trace), "-o", str(out)).returncode == 0
    png = tmp_path / "shot.png"
    chromium(tmp_path, out.resolve().as_uri(), "--window-size=1400,1000", "--hide-scrollbars",
             f"--screenshot={png}")  # fmt: skip
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000


def test_docs_screenshot_is_present():
    assert (REPO / "docs" / "report.png").stat().st_size > 50_000


def _validated_batches(path: Path):
    """Every batch of ``path`` through the validating decoder alone (no fast path)."""
    from sysspan.exporters.otlp_json import decode_line

    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield from decode_line(line)


@pytest.mark.slow
def test_report_outputs_are_the_same_bytes_as_from_validated_spans(real_trace, decision_trace, tmp_path):
    """``report`` reads plain span records from the fast reader. The same files decoded by
    the validating decoder into Span objects and fed span by span must render the same HTML,
    folded stacks and Perfetto JSON, byte for byte (in one process: the page lists some
    names in set order, which follows the per-process string hash)."""
    from sysspan.cli import main
    from sysspan.reporters.aggregate import Aggregator
    from sysspan.reporters.folded import write_folded
    from sysspan.reporters.html import write_html
    from sysspan.reporters.perfetto import write_perfetto
    from sysspan.tracefile import span_record

    wide = tmp_path / "wide.jsonl"
    write_big_trace(wide, 30_000, n_procs=40, stacks=True, decisions=True)
    # A failure told only by the status (no error.type): the report calls it "ERROR".
    batch = next(iter(_validated_batches(real_trace)))
    first = batch.spans[0]
    failed = Span(first.trace_id, 0xFA11ED, first.parent_id, "ioctl", first.start_ns, first.end_ns + 7,
                  attributes={"syscall.name": "ioctl", "thread.id": 1}, status=StatusCode.ERROR)  # fmt: skip
    odd = tmp_path / "odd.jsonl"
    odd.write_text(encode_line(ResourceSpans(batch.resource, [failed])) + "\n", encoding="utf-8")
    files = [str(real_trace), str(decision_trace), str(wide), str(odd)]

    ref = Aggregator()
    for path in files:
        ref.files.append(path)
        for batch in _validated_batches(Path(path)):
            ref.add_batch(batch)
    report_ref = ref.report()
    assert report_ref.counts.errors and report_ref.counts.decisions and report_ref.has_stacks
    write_html(report_ref, tmp_path / "ref.html", "same")
    write_folded(report_ref, tmp_path / "ref.folded")

    def validated_records(path):
        for batch in _validated_batches(Path(path)):
            for span in batch.spans:
                yield span_record(span)

    write_perfetto(report_ref, tmp_path / "ref.json", records=validated_records)

    out = tmp_path / "new"
    rc = main(["report", *files, "-o", f"{out}.html", "--folded", f"{out}.folded",
               "--perfetto", f"{out}.json", "--title", "same"])  # fmt: skip
    assert rc == 0
    for ext in ("html", "folded", "json"):
        new = (tmp_path / f"new.{ext}").read_bytes()
        old = (tmp_path / f"ref.{ext}").read_bytes()
        assert len(new) > 1000, ext
        assert new == old, f"{ext} differs from the validated-span rendering"
