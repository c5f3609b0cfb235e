"""The HTML report: one self-contained file (inline CSS, JS and data; no network) that opens
from disk and stays small and fast however long the trace was.

Why it stays small: it is drawn from a :class:`~sysspan.reporters.aggregate.Report`, never from
spans, and every list is capped here: at most :data:`MAX_ROWS` waterfall rows (the busiest
processes and their ancestors), at most :data:`MAX_CELLS` timeline cells (the aggregator's bins,
merged further by powers of two), at most :data:`MAX_FLAME_NODES` flame-graph nodes (frames
thinner than a pixel merged into "other"), and capped table rows. Tables and headline counts are
rendered here as HTML (readable with scripts off, and by tests); the waterfall and the flame graph
are drawn on ``<canvas>`` by the inline script, so there is no DOM node per span.
"""

from __future__ import annotations

import datetime as _dt
import functools
import html
import json
import os
import string
from importlib import resources
from typing import Any

from sysspan import __version__
from sysspan.fsutil import private_open
from sysspan.reporters.aggregate import QUANTILE_RELATIVE_ERROR
from sysspan.reporters.model import Node, Report, SlowSyscall
from sysspan.reporters.syscall_classes import CLASSES, syscall_class
from sysspan.reporters.units import fmt_ns

__all__ = ["MAX_CELLS", "MAX_FLAME_NODES", "MAX_ROWS", "build_view", "flame_tree", "render_html",
           "write_html"]  # fmt: skip

#: Waterfall rows (processes/runs) drawn at most.
MAX_ROWS = 1_000
#: Timeline cells (row × bin) embedded at most.
MAX_CELLS = 60_000
#: Flame-graph nodes embedded at most.
MAX_FLAME_NODES = 4_000
#: Frames narrower than this share of the total are merged into their parent's "other".
FLAME_MIN_FRACTION = 1 / 3_000
#: Table caps.
MAX_SYSCALL_ROWS = 400
MAX_PROCESS_ROWS = 500
MAX_DECISION_ROWS = 300
_SLOWEST_SHOWN = 25

_KIND_PROCESS, _KIND_DECISION, _KIND_STACK, _KIND_OTHER, _KIND_ROOT = (
    len(CLASSES) + i for i in range(5)
)


# --------------------------------------------------------------------------- formatting


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _num(n: int) -> str:
    return f"{n:,}"


# --------------------------------------------------------------------------- flame graph


def flame_tree(
    folded: dict[tuple[str, ...], list],
    max_nodes: int = MAX_FLAME_NODES,
    min_fraction: float = FLAME_MIN_FRACTION,
) -> dict[str, list]:
    """Flatten folded stacks into a pruned tree: parallel arrays ``name``, ``value`` (ns),
    ``count``, ``kind``, ``parent`` (index, -1 for the root), parents before children.

    Children thinner than ``min_fraction`` of the total are merged into one ``other`` node
    per parent (dropped when that, too, is thinner); the fraction doubles until the tree
    has at most ``max_nodes`` nodes, so the page never draws more than that.
    """
    letters = {"P": _KIND_PROCESS, "D": _KIND_DECISION, "S": _KIND_STACK}
    cls_index = {cls: i for i, cls in enumerate(CLASSES)}
    index: dict[tuple[int, str], int] = {}
    names: list[str] = ["all"]
    values: list[int] = [0]
    counts: list[int] = [0]
    kinds: list[int] = [_KIND_ROOT]
    parents: list[int] = [-1]
    for frames, acc in folded.items():
        count, ns = acc[0], acc[1]
        letters_of = acc[2] if len(acc) > 2 else "P" * (len(frames) - 1) + "Y"
        values[0] += ns
        counts[0] += count
        node = 0
        for i, frame in enumerate(frames):
            key = (node, frame)
            child = index.get(key)
            if child is None:
                child = index[key] = len(names)
                names.append(frame)
                values.append(0)
                counts.append(0)
                parents.append(node)
                kind = letters.get(letters_of[i] if i < len(letters_of) else "S")
                kinds.append(cls_index[syscall_class(frame)] if kind is None else kind)
            values[child] += ns
            counts[child] += count
            node = child
    children: list[list[int]] = [[] for _ in names]
    for i in range(1, len(names)):
        children[parents[i]].append(i)
    for ch in children:
        if len(ch) > 1:
            ch.sort(key=values.__getitem__, reverse=True)
    tree = (names, values, counts, kinds, children)
    fraction = min_fraction
    while True:
        out = _flatten(tree, max(1, values[0] * fraction))
        if len(out["name"]) <= max_nodes:
            return out
        fraction *= 2


def _flatten(tree: tuple, threshold: float) -> dict[str, list]:
    names, values, counts, kinds, children = tree
    o_name: list[str] = ["all"]
    o_value: list[int] = [values[0]]
    o_count: list[int] = [counts[0]]
    o_kind: list[int] = [_KIND_ROOT]
    o_parent: list[int] = [-1]
    queue = [(0, 0)]
    while queue:
        node, idx = queue.pop()
        other_v = 0
        other_c = 0
        for child in children[node]:
            if values[child] < threshold:
                other_v += values[child]
                other_c += counts[child]
                continue
            o_name.append(names[child])
            o_value.append(values[child])
            o_count.append(counts[child])
            o_kind.append(kinds[child])
            o_parent.append(idx)
            queue.append((child, len(o_name) - 1))
        if other_v >= threshold:
            o_name.append("other")
            o_value.append(other_v)
            o_count.append(other_c)
            o_kind.append(_KIND_OTHER)
            o_parent.append(idx)
    return {"name": o_name, "value": o_value, "count": o_count, "kind": o_kind,
            "parent": o_parent}  # fmt: skip


# --------------------------------------------------------------------------- view data


def _pick_rows(nodes: list[Node], cap: int) -> list[int]:
    """Indexes of the nodes to draw: all when few, else the busiest and their ancestors."""
    if len(nodes) <= cap:
        return [n.index for n in nodes]
    ranked = sorted(nodes, key=lambda n: (-n.syscall_ns, -(n.end - n.start), n.index))
    keep: set[int] = set()
    for node in ranked:
        chain = []
        idx = node.index
        while idx >= 0 and idx not in keep:
            chain.append(idx)
            idx = nodes[idx].parent
        if len(keep) + len(chain) > cap:
            continue
        keep.update(chain)
        if len(keep) >= cap:
            break
    return sorted(keep)


def build_view(report: Report, title: str) -> dict[str, Any]:
    """The JSON the page script draws from: times in ns relative to ``report.start_ns`` (so
    they stay exact as JavaScript numbers), rows, cells and flame nodes already capped."""
    base = report.start_ns
    tl = report.timeline
    rows_idx = _pick_rows(report.nodes, MAX_ROWS)
    row_of = {idx: i for i, idx in enumerate(rows_idx)}
    rows = []
    for idx in rows_idx:
        n = report.nodes[idx]
        rows.append({
            "n": n.name,
            "pid": n.pid,
            "d": n.depth,
            "k": n.kind,
            "s": max(0, n.start - base) if n.start else 0,
            "e": max(0, n.end - base) if n.end else 0,
            "sc": n.syscalls,
            "ns": n.syscall_ns,
            "er": n.errors,
            "a": n.argv[:160],
            "x": n.exit_code,
            "err": n.error,
            "t": n.tids,
        })

    # Binned activity, merged by a power of two until the cell budget holds.
    bins = {row_of[i]: cells for i, cells in tl.bins.items() if i in row_of}
    activity: dict[int, list[int]] = {}
    for cells in tl.bins.values():  # every node, drawn or not
        for cell in cells:
            acc = activity.get(cell[0])
            if acc is None:
                activity[cell[0]] = list(cell[1:])
            else:
                for i, v in enumerate(cell[1:]):
                    acc[i] += v
    factor = 1
    while sum(len({c[0] // factor for c in cells}) for cells in bins.values()) > MAX_CELLS:
        factor *= 2
    ncls = len(CLASSES)
    cells_out: dict[int, list[int]] = {}
    for r, cells in bins.items():
        merged: dict[int, list[int]] = {}
        for cell in cells:
            b = cell[0] // factor
            acc = merged.get(b)
            if acc is None:
                merged[b] = list(cell[1:])
            else:
                for i, v in enumerate(cell[1:]):
                    acc[i] += v
        flat: list[int] = []
        for b in sorted(merged):
            vals = merged[b]
            by_cls = vals[:ncls]
            total = sum(by_cls)
            dominant = max(range(ncls), key=lambda i: by_cls[i])
            flat.extend((b, total, dominant, vals[ncls]))
        cells_out[r] = flat
    timeline: dict[str, Any] = {
        "o": tl.origin - base,
        "w": tl.width * factor,
        "cells": cells_out,
        # Whole-trace syscall time per grid bin and class: [bin, ns per class..., errors]...
        "aw": tl.width,
        "act": [x for b in sorted(activity) for x in (b, *activity[b])],
    }
    # Exact intervals when the trace is small enough to have them.
    names: list[str] = []
    name_ix: dict[str, int] = {}

    def ix(name: str) -> int:
        i = name_ix.get(name)
        if i is None:
            i = name_ix[name] = len(names)
            names.append(name)
        return i

    if tl.exact is not None:
        exact: dict[int, list] = {}
        for s, dur, name, node, _tid, err in tl.exact:
            row = row_of.get(node)
            if row is None:
                continue
            exact.setdefault(row, []).extend(
                (s - base, dur, ix(name), ix(err) if err else -1)
            )
        timeline["exact"] = exact
    if tl.decisions:
        dec: dict[int, list] = {}
        for s, dur, name, node in tl.decisions:
            row = row_of.get(node)
            if row is not None:
                dec.setdefault(row, []).extend((s - base, dur, ix(name)))
        timeline["dec"] = dec
    timeline["names"] = names

    flame = flame_tree(report.folded)
    # sorted: the same trace renders to the same bytes whatever the string hash seed
    cls_of = {name: CLASSES.index(syscall_class(name)) for name in sorted({r.name for r in report.syscalls})}
    return {
        "title": title,
        "span_ns": max(0, report.end_ns - base),
        "classes": list(CLASSES),
        "rows": rows,
        "hidden_rows": len(report.nodes) - len(rows),
        "timeline": timeline,
        "flame": flame,
        "flame_by": "source stack" if report.has_stacks else "process → decision → syscall",
        "syscall_class": cls_of,
    }


# --------------------------------------------------------------------------- HTML


def _default_title(report: Report) -> str:
    for node in report.nodes:
        if node.kind in ("run", "process") and node.argv:
            return node.argv
    for node in report.nodes:
        if node.kind in ("run", "process"):
            return node.name
    return os.path.basename(report.files[0]) if report.files else "trace"


def _cls_chip(cls: str) -> str:
    return f'<span class="chip c-{_e(cls)}">{_e(cls)}</span>'


def _errors_cell(errors: dict[str, int]) -> str:
    if not errors:
        return '<td class="num muted" data-v="0">–</td>'
    parts = [f'<span class="errno">{_e(k)}&nbsp;<b>{_num(v)}</b></span>' for k, v in errors.items()]
    return f'<td data-v="{sum(errors.values())}">{" ".join(parts)}</td>'


def _dur_td(ns: int) -> str:
    return f'<td class="num" data-v="{ns}">{_e(fmt_ns(ns))}</td>'


def _source(row: SlowSyscall) -> str:
    file = row.file or ""
    line = row.line
    func = row.function or ""
    where = ""
    if file:
        where = os.path.basename(file) + (f":{line}" if line is not None else "")
    text = " ".join(p for p in (func and f"{func}()", where) if p)
    if not text:
        return '<span class="muted">–</span>'
    title = file + (f":{line}" if line is not None else "")
    stack = row.stack or ""
    if stack:
        title += "\n\n" + stack
    return f'<span class="src" title="{_e(title)}">{_e(text)}</span>'


def _table_syscalls(report: Report) -> str:
    total = report.syscall_ns or 1
    out = []
    for row in report.syscalls[:MAX_SYSCALL_ROWS]:
        share = row.total_ns / total
        out.append(
            "<tr>"
            f'<td><span class="dot c-{row.cls}"></span><code>{_e(row.name)}</code></td>'
            f'<td>{_cls_chip(row.cls)}</td>'
            f'<td class="num" data-v="{row.count}">{_num(row.count)}</td>'
            f'<td class="num" data-v="{row.total_ns}"><span class="bar"><i style="width:'
            f'{share * 100:.1f}%"></i></span>{_e(fmt_ns(row.total_ns))}</td>'
            f'<td class="num muted" data-v="{share}">{share * 100:.1f}%</td>'
            + _dur_td(row.mean_ns)
            + _dur_td(row.p50_ns)
            + _dur_td(row.p99_ns)
            + _dur_td(row.max_ns)
            + _errors_cell(row.errors)
            + "</tr>"
        )
    more = len(report.syscalls) - MAX_SYSCALL_ROWS
    foot = f'<p class="note">{more} more syscall names not shown.</p>' if more > 0 else ""
    return (
        '<table class="sortable" id="table-syscalls"><thead><tr>'
        '<th data-t="s">syscall</th><th data-t="s">class</th><th>calls</th>'
        '<th class="sorted-desc">total time</th><th>share</th><th>mean</th><th>p50</th>'
        "<th>p99</th><th>max</th><th>errors</th></tr></thead><tbody>"
        + "".join(out)
        + "</tbody></table>"
        + foot
    )


def _table_slowest(report: Report) -> str:
    out = []
    for row in report.slowest:
        ret = row.error or ("" if row.ret is None else row.ret)
        ret_cls = ' class="err"' if row.error else ""
        who = f'{_e(row.process)} <span class="muted">{_e(row.pid)}'
        if row.tid is not None and row.tid != row.pid:
            who += f'/{_e(row.tid)}'
        who += "</span>"
        out.append(
            "<tr>"
            + _dur_td(row.dur_ns)
            + f'<td><span class="dot c-{row.cls}"></span><code>{_e(row.name)}</code></td>'
            f'<td class="args"><code title="{_e(row.args)}">{_e(row.args)}</code></td>'
            f"<td{ret_cls}><code>{_e(ret)}</code></td>"
            f"<td>{who}</td>"
            f"<td>{_source(row)}</td>"
            "</tr>"
        )
    toggle = ""
    if len(report.slowest) > _SLOWEST_SHOWN:
        toggle = (f'<button class="more-btn" data-for="table-slowest">show all '
                  f'{len(report.slowest)}</button>')
    return (
        '<table class="sortable collapsed" id="table-slowest"><thead><tr>'
        '<th class="sorted-desc">duration</th><th data-t="s">syscall</th><th data-t="s">arguments</th>'
        '<th data-t="s">result</th><th data-t="s">process</th><th data-t="s">source</th>'
        "</tr></thead><tbody>" + "".join(out) + "</tbody></table>" + toggle
    )


def _table_decisions(report: Report) -> str:
    out = []
    for row in report.decisions[:MAX_DECISION_ROWS]:
        share = row.syscall_ns / row.total_ns if row.total_ns else 0.0
        site = ""
        if row.file:
            site = os.path.basename(row.file) + (
                f":{row.line}" if row.line is not None else ""
            )
        results = ", ".join(f"{k} ×{v}" for k, v in row.results.items())
        label = f"{row.category}::{row.name}" if row.category else row.name
        out.append(
            "<tr>"
            f'<td><span class="dot c-decision"></span><code>{_e(label)}</code>'
            f'<div class="muted small mono">{_e(row.key)}</div></td>'
            f'<td><span class="src" title="{_e(row.file)}">{_e(site) or "–"}</span></td>'
            f'<td class="num" data-v="{row.count}">{_num(row.count)}</td>'
            + _dur_td(row.total_ns)
            + _dur_td(row.syscall_ns)
            + f'<td class="num" data-v="{share}"><span class="bar"><i class="dec" style="width:'
            f'{min(share, 1) * 100:.1f}%"></i></span>{share * 100:.0f}%</td>'
            f'<td class="num" data-v="{row.syscalls}">{_num(row.syscalls)}'
            + (f' <span class="err">({_num(row.syscall_errors)} failed)</span>'
               if row.syscall_errors else "")
            + "</td>"
            + _dur_td(row.max_ns)
            + f'<td class="small" title="{_e(row.input)}">{_e(results) or "–"}</td>'
            "</tr>"
        )
    inst = []
    for one in report.slowest_decisions:
        site = os.path.basename(one.file) + (f":{one.line}" if one.line is not None else "")
        inst.append(
            "<tr>"
            + _dur_td(one.dur_ns)
            + f'<td><code>{_e(one.name)}</code></td>'
            + _dur_td(one.syscall_ns)
            + f'<td class="num" data-v="{one.syscalls}">{_num(one.syscalls)}</td>'
            f'<td class="args"><code title="{_e(one.input)}">{_e(one.input)}</code></td>'
            f'<td class="args"><code title="{_e(one.result)}">{_e(one.result)}</code></td>'
            f'<td>{_e(one.process)} <span class="muted">{_e(one.pid)}</span></td>'
            f'<td><span class="src" title="{_e(one.file)}">{_e(site) or "–"}</span></td>'
            "</tr>"
        )
    return (
        '<table class="sortable" id="table-decisions"><thead><tr>'
        '<th data-t="s">decision</th><th data-t="s">site</th><th>count</th>'
        '<th class="sorted-desc">time inside</th><th>syscall time under</th><th>syscall share</th>'
        '<th>syscalls</th><th>slowest</th><th data-t="s">results</th></tr></thead><tbody>'
        + "".join(out)
        + "</tbody></table>"
        + '<h3>Slowest decisions</h3>'
        '<table class="sortable collapsed" id="table-decision-instances">'
        '<thead><tr><th class="sorted-desc">duration</th><th data-t="s">decision</th>'
        '<th>syscall time</th><th>syscalls</th><th data-t="s">input</th><th data-t="s">result</th>'
        '<th data-t="s">process</th><th data-t="s">site</th></tr></thead><tbody>'
        + "".join(inst)
        + "</tbody></table>"
        + (f'<button class="more-btn" data-for="table-decision-instances">show all {len(inst)}'
           "</button>" if len(inst) > _SLOWEST_SHOWN else "")
    )


def _table_processes(report: Report) -> str:
    out = []
    shown = [n for n in report.nodes if n.kind != "run"][:MAX_PROCESS_ROWS]
    for n in shown:
        dur = max(0, n.end - n.start)
        code = n.exit_code
        status = n.error or ("" if code is None else str(code))
        bad = bool(n.error) or (isinstance(code, int) and code != 0)
        out.append(
            "<tr>"
            f'<td class="num" data-v="{n.pid or 0}">{_e(n.pid)}</td>'
            f'<td><span style="padding-left:{min(n.depth, 20) * 12}px"></span>'
            f'<code>{_e(n.name)}</code></td>'
            f'<td class="args"><code title="{_e(n.argv)}">{_e(n.argv)}</code></td>'
            + _dur_td(dur)
            + f'<td class="num" data-v="{n.syscalls}">{_num(n.syscalls)}</td>'
            + _dur_td(n.syscall_ns)
            + f'<td class="num{" err" if n.errors else " muted"}" data-v="{n.errors}">'
            f'{_num(n.errors)}</td>'
            f'<td class="num{" err" if bad else ""}">{_e(status) or "–"}</td>'
            "</tr>"
        )
    more = len([n for n in report.nodes if n.kind != "run"]) - len(shown)
    foot = f'<p class="note">{more} more processes not listed.</p>' if more > 0 else ""
    return (
        '<table class="sortable" id="table-processes"><thead><tr><th>pid</th>'
        '<th data-t="s">process</th><th data-t="s">command line</th><th>duration</th>'
        "<th>syscalls</th><th>syscall time</th><th>errors</th><th>exit</th></tr></thead><tbody>"
        + "".join(out)
        + "</tbody></table>"
        + foot
    )


def _card(ident: str, label: str, value: int, extra: str = "", cls: str = "") -> str:
    return (
        f'<div class="card {cls}"><div class="label">{_e(label)}</div>'
        f'<div class="value" id="{ident}" data-value="{value}">{_num(value)}</div>'
        f'<div class="extra">{extra}</div></div>'
    )


def render_html(report: Report, title: str | None = None) -> str:
    """The whole page as one string."""
    title = title or _default_title(report)
    c = report.counts
    wall = max(0, report.end_ns - report.start_ns)
    sys_ns = report.syscall_ns
    view = build_view(report, title)
    data = json.dumps(view, separators=(",", ":"), ensure_ascii=False)
    data = data.replace("</", "<\\/").replace("<!--", "<\\!--")
    started = ""
    if report.start_ns:
        started = _dt.datetime.fromtimestamp(report.start_ns / 1e9, _dt.timezone.utc).strftime(
            "%Y-%m-%d %H:%M:%S UTC"
        )
    err_share = f"{c.errors / c.syscalls * 100:.1f}% of syscalls" if c.syscalls else ""
    cards = "".join([
        _card("count-spans", "spans", c.spans, f"{_num(c.traces)} trace(s)"),
        _card("count-processes", "processes", c.processes, f"{_num(c.runs)} run(s)"),
        _card("count-syscalls", "syscalls", c.syscalls, _e(fmt_ns(sys_ns)) + " in syscalls"),
        _card("count-errors", "failed syscalls", c.errors, err_share,
              "bad" if c.errors else ""),
        _card("count-decisions", "decisions", c.decisions,
              f"{len(report.decisions)} distinct" if c.decisions else "none recorded"),
        '<div class="card"><div class="label">wall time</div>'
        f'<div class="value" id="wall-time" data-value="{wall}">{_e(fmt_ns(wall))}</div>'
        f'<div class="extra">{_e(started)}</div></div>',
    ])  # fmt: skip
    legend = "".join(
        f'<span class="lg"><span class="dot c-{cls}"></span>{cls}</span>' for cls in CLASSES
    ) + '<span class="lg"><span class="dot c-error"></span>error</span>'
    if c.decisions:
        legend += '<span class="lg"><span class="dot c-decision"></span>decision</span>'
    subtitle_bits = []
    if report.services:
        subtitle_bits.append("service " + ", ".join(_e(s) for s in report.services[:3]))
    if report.trace_ids:
        tid = report.trace_ids[0]
        more = f" +{len(report.trace_ids) - 1}" if len(report.trace_ids) > 1 else ""
        subtitle_bits.append(f'trace <code class="tid">{_e(tid)}</code>{more}')
    subtitle_bits.append(", ".join(_e(os.path.basename(f)) for f in report.files[:4]))
    notes = list(report.notes)
    if view["hidden_rows"] > 0:
        notes.append(f"{view['hidden_rows']} less busy processes are not drawn in the timeline")
    notes.append(
        f"p50/p99 come from log-bucket histograms: within "
        f"{QUANTILE_RELATIVE_ERROR * 100:.1f}% of the exact value; totals, counts and max are exact"
    )
    decisions_html = ""
    if c.decisions:
        decisions_html = (
            '<section id="decisions"><div class="sec-head"><h2>Decision impact</h2>'
            '<span class="hint">time spent inside each recorded decision and the syscalls made '
            "under it, slowest first</span></div>" + _table_decisions(report) + "</section>"
        )
    return _asset("report.html").substitute(
        title=_e(title),
        error_collector=_asset_text("errors.js"),
        css=_asset_text("report.css"),
        subtitle=" · ".join(subtitle_bits),
        cards=cards,
        legend=legend,
        syscalls_table=_table_syscalls(report),
        slowest_count=len(report.slowest),
        slowest_table=_table_slowest(report),
        decisions=decisions_html,
        processes_table=_table_processes(report),
        notes="".join(f"<li>{_e(n)}</li>" for n in notes),
        version=_e(__version__),
        data=data,
        script=_asset_text("report.js"),
    )


def write_html(report: Report, path: str | os.PathLike[str], title: str | None = None) -> int:
    """Write the page to ``path``; returns its size in bytes."""
    text = render_html(report, title)
    data = text.encode("utf-8", "backslashreplace")
    with private_open(path, "wb") as fh:
        fh.write(data)
    return len(data)


# --------------------------------------------------------------------------- page assets

# The page's skeleton (report.html, a string.Template), its style and its scripts are package
# data files under templates/: errors.js runs first and shows any script error (or
# console.error) in <pre id="js-errors">, which a headless browser's --dump-dom shows, so
# tests can prove the page ran clean.


@functools.cache
def _asset_text(name: str) -> str:
    return resources.files("sysspan.reporters").joinpath("templates").joinpath(name).read_text(encoding="utf-8")


def _asset(name: str) -> string.Template:
    return string.Template(_asset_text(name))
