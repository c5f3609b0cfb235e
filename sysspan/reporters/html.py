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
import html
import json
import os
from typing import Any

from sysspan import __version__
from sysspan.fsutil import private_open
from sysspan.reporters.aggregate import QUANTILE_RELATIVE_ERROR, Report
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


def _pick_rows(nodes: list[dict[str, Any]], cap: int) -> list[int]:
    """Indexes of the nodes to draw: all when few, else the busiest and their ancestors."""
    if len(nodes) <= cap:
        return [n["index"] for n in nodes]
    ranked = sorted(nodes, key=lambda n: (-n["syscall_ns"], -(n["end"] - n["start"]), n["index"]))
    keep: set[int] = set()
    for node in ranked:
        chain = []
        idx = node["index"]
        while idx >= 0 and idx not in keep:
            chain.append(idx)
            idx = nodes[idx]["parent"]
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
            "n": n["name"],
            "pid": n["pid"],
            "d": n["depth"],
            "k": n["kind"],
            "s": max(0, n["start"] - base) if n["start"] else 0,
            "e": max(0, n["end"] - base) if n["end"] else 0,
            "sc": n["syscalls"],
            "ns": n["syscall_ns"],
            "er": n["errors"],
            "a": n["argv"][:160],
            "x": n["exit_code"],
            "err": n["error"],
            "t": n["tids"],
        })

    # Binned activity, merged by a power of two until the cell budget holds.
    bins = {row_of[i]: cells for i, cells in tl["bins"].items() if i in row_of}
    activity: dict[int, list[int]] = {}
    for cells in tl["bins"].values():  # every node, drawn or not
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
        "o": tl["origin"] - base,
        "w": tl["width"] * factor,
        "cells": cells_out,
        # Whole-trace syscall time per grid bin and class: [bin, ns per class..., errors]...
        "aw": tl["width"],
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

    if tl.get("exact") is not None:
        exact: dict[int, list] = {}
        for s, dur, name, node, _tid, err in tl["exact"]:
            r = row_of.get(node)
            if r is None:
                continue
            exact.setdefault(r, []).extend(
                (s - base, dur, ix(name), ix(err) if err else -1)
            )
        timeline["exact"] = exact
    if tl.get("decisions"):
        dec: dict[int, list] = {}
        for s, dur, name, node in tl["decisions"]:
            r = row_of.get(node)
            if r is not None:
                dec.setdefault(r, []).extend((s - base, dur, ix(name)))
        timeline["dec"] = dec
    timeline["names"] = names

    flame = flame_tree(report.folded)
    # sorted: the same trace renders to the same bytes whatever the string hash seed
    cls_of = {name: CLASSES.index(syscall_class(name)) for name in sorted({r["name"] for r in report.syscalls})}
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
        if node["kind"] in ("run", "process") and node["argv"]:
            return node["argv"]
    for node in report.nodes:
        if node["kind"] in ("run", "process"):
            return node["name"]
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


def _source(row: dict[str, Any]) -> str:
    file = row.get("file") or ""
    line = row.get("line")
    func = row.get("function") or ""
    where = ""
    if file:
        where = os.path.basename(file) + (f":{line}" if line is not None else "")
    text = " ".join(p for p in (func and f"{func}()", where) if p)
    if not text:
        return '<span class="muted">–</span>'
    title = file + (f":{line}" if line is not None else "")
    stack = row.get("stack") or ""
    if stack:
        title += "\n\n" + stack
    return f'<span class="src" title="{_e(title)}">{_e(text)}</span>'


def _table_syscalls(report: Report) -> str:
    total = report.syscall_ns or 1
    out = []
    for row in report.syscalls[:MAX_SYSCALL_ROWS]:
        share = row["total_ns"] / total
        out.append(
            "<tr>"
            f'<td><span class="dot c-{row["class"]}"></span><code>{_e(row["name"])}</code></td>'
            f'<td>{_cls_chip(row["class"])}</td>'
            f'<td class="num" data-v="{row["count"]}">{_num(row["count"])}</td>'
            f'<td class="num" data-v="{row["total_ns"]}"><span class="bar"><i style="width:'
            f'{share * 100:.1f}%"></i></span>{_e(fmt_ns(row["total_ns"]))}</td>'
            f'<td class="num muted" data-v="{share}">{share * 100:.1f}%</td>'
            + _dur_td(row["mean_ns"])
            + _dur_td(row["p50_ns"])
            + _dur_td(row["p99_ns"])
            + _dur_td(row["max_ns"])
            + _errors_cell(row["errors"])
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
        ret = row["error"] or ("" if row["return"] is None else row["return"])
        ret_cls = ' class="err"' if row["error"] else ""
        who = f'{_e(row["process"])} <span class="muted">{_e(row["pid"])}'
        if row["tid"] is not None and row["tid"] != row["pid"]:
            who += f'/{_e(row["tid"])}'
        who += "</span>"
        out.append(
            "<tr>"
            + _dur_td(row["dur_ns"])
            + f'<td><span class="dot c-{row["class"]}"></span><code>{_e(row["name"])}</code></td>'
            f'<td class="args"><code title="{_e(row["args"])}">{_e(row["args"])}</code></td>'
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
        share = row["syscall_ns"] / row["total_ns"] if row["total_ns"] else 0.0
        site = ""
        if row["file"]:
            site = os.path.basename(row["file"]) + (
                f":{row['line']}" if row["line"] is not None else ""
            )
        results = ", ".join(f"{k} ×{v}" for k, v in row["results"].items())
        label = f"{row['category']}::{row['name']}" if row["category"] else row["name"]
        out.append(
            "<tr>"
            f'<td><span class="dot c-decision"></span><code>{_e(label)}</code>'
            f'<div class="muted small mono">{_e(row["key"])}</div></td>'
            f'<td><span class="src" title="{_e(row["file"])}">{_e(site) or "–"}</span></td>'
            f'<td class="num" data-v="{row["count"]}">{_num(row["count"])}</td>'
            + _dur_td(row["total_ns"])
            + _dur_td(row["syscall_ns"])
            + f'<td class="num" data-v="{share}"><span class="bar"><i class="dec" style="width:'
            f'{min(share, 1) * 100:.1f}%"></i></span>{share * 100:.0f}%</td>'
            f'<td class="num" data-v="{row["syscalls"]}">{_num(row["syscalls"])}'
            + (f' <span class="err">({_num(row["syscall_errors"])} failed)</span>'
               if row["syscall_errors"] else "")
            + "</td>"
            + _dur_td(row["max_ns"])
            + f'<td class="small" title="{_e(row["input"])}">{_e(results) or "–"}</td>'
            "</tr>"
        )
    inst = []
    for row in report.slowest_decisions:
        site = os.path.basename(row["file"]) + (f":{row['line']}" if row["line"] is not None else "")
        inst.append(
            "<tr>"
            + _dur_td(row["dur_ns"])
            + f'<td><code>{_e(row["name"])}</code></td>'
            + _dur_td(row["syscall_ns"])
            + f'<td class="num" data-v="{row["syscalls"]}">{_num(row["syscalls"])}</td>'
            f'<td class="args"><code title="{_e(row["input"])}">{_e(row["input"])}</code></td>'
            f'<td class="args"><code title="{_e(row["result"])}">{_e(row["result"])}</code></td>'
            f'<td>{_e(row["process"])} <span class="muted">{_e(row["pid"])}</span></td>'
            f'<td><span class="src" title="{_e(row["file"])}">{_e(site) or "–"}</span></td>'
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
    shown = [n for n in report.nodes if n["kind"] != "run"][:MAX_PROCESS_ROWS]
    for n in shown:
        dur = max(0, n["end"] - n["start"])
        code = n["exit_code"]
        status = n["error"] or ("" if code is None else str(code))
        bad = bool(n["error"]) or (isinstance(code, int) and code != 0)
        out.append(
            "<tr>"
            f'<td class="num" data-v="{n["pid"] or 0}">{_e(n["pid"])}</td>'
            f'<td><span style="padding-left:{min(n["depth"], 20) * 12}px"></span>'
            f'<code>{_e(n["name"])}</code></td>'
            f'<td class="args"><code title="{_e(n["argv"])}">{_e(n["argv"])}</code></td>'
            + _dur_td(dur)
            + f'<td class="num" data-v="{n["syscalls"]}">{_num(n["syscalls"])}</td>'
            + _dur_td(n["syscall_ns"])
            + f'<td class="num{" err" if n["errors"] else " muted"}" data-v="{n["errors"]}">'
            f'{_num(n["errors"])}</td>'
            f'<td class="num{" err" if bad else ""}">{_e(status) or "–"}</td>'
            "</tr>"
        )
    more = len([n for n in report.nodes if n["kind"] != "run"]) - len(shown)
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
    err_share = f"{c['errors'] / c['syscalls'] * 100:.1f}% of syscalls" if c["syscalls"] else ""
    cards = "".join([
        _card("count-spans", "spans", c["spans"], f"{_num(c['traces'])} trace(s)"),
        _card("count-processes", "processes", c["processes"], f"{_num(c['runs'])} run(s)"),
        _card("count-syscalls", "syscalls", c["syscalls"], _e(fmt_ns(sys_ns)) + " in syscalls"),
        _card("count-errors", "failed syscalls", c["errors"], err_share,
              "bad" if c["errors"] else ""),
        _card("count-decisions", "decisions", c["decisions"],
              f"{len(report.decisions)} distinct" if c["decisions"] else "none recorded"),
        '<div class="card"><div class="label">wall time</div>'
        f'<div class="value" id="wall-time" data-value="{wall}">{_e(fmt_ns(wall))}</div>'
        f'<div class="extra">{_e(started)}</div></div>',
    ])  # fmt: skip
    legend = "".join(
        f'<span class="lg"><span class="dot c-{cls}"></span>{cls}</span>' for cls in CLASSES
    ) + '<span class="lg"><span class="dot c-error"></span>error</span>'
    if c["decisions"]:
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
    if c["decisions"]:
        decisions_html = (
            '<section id="decisions"><div class="sec-head"><h2>Decision impact</h2>'
            '<span class="hint">time spent inside each recorded decision and the syscalls made '
            "under it, slowest first</span></div>" + _table_decisions(report) + "</section>"
        )
    body = f"""<header>
<div class="brand"><svg class="logo" viewBox="0 0 18 18" aria-hidden="true"><rect width="18" height="18" rx="5" fill="#6366f1"/><rect x="3" y="4" width="9" height="2.2" rx="1" fill="#fff"/><rect x="6" y="8" width="9" height="2.2" rx="1" fill="#c7d2fe"/><rect x="4" y="12" width="6" height="2.2" rx="1" fill="#fff"/></svg>sysspan report</div>
<h1 id="title" title="{_e(title)}">{_e(title)}</h1>
<div class="subtitle">{" · ".join(subtitle_bits)}</div>
</header>
<main>
<section class="cards" id="counts">{cards}</section>
<section id="timeline-section">
 <div class="sec-head"><h2>Process timeline</h2>
  <div class="controls"><button id="tl-out" title="zoom out">−</button><button id="tl-in" title="zoom in">+</button><button id="tl-reset">reset</button>
  <span class="hint">wheel to zoom · drag to pan · double-click to reset</span></div></div>
 <div class="legend">{legend}</div>
 <div id="tl-wrap" class="canvas-wrap"><canvas id="tl-canvas"></canvas></div>
</section>
<section id="flame-section">
 <div class="sec-head"><h2>Flame graph</h2><span class="hint" id="flame-by"></span>
  <div class="controls"><span id="flame-crumbs" class="crumbs"></span><button id="flame-reset">reset zoom</button></div></div>
 <div id="flame-wrap" class="canvas-wrap"><canvas id="flame-canvas"></canvas></div>
</section>
<section id="latency"><div class="sec-head"><h2>Syscall latency</h2>
<span class="hint">click a column to sort</span></div>{_table_syscalls(report)}</section>
<section id="slowest"><div class="sec-head"><h2>Slowest syscalls</h2>
<span class="hint">the {len(report.slowest)} longest individual calls</span></div>{_table_slowest(report)}</section>
{decisions_html}
<section id="processes"><div class="sec-head"><h2>Processes</h2></div>{_table_processes(report)}</section>
<footer><ul>{"".join(f"<li>{_e(n)}</li>" for n in notes)}</ul>
<p>Generated by sysspan {_e(__version__)} · <span id="render-status">pending</span><span id="selftest" hidden></span></p>
<pre id="js-errors" hidden></pre></footer>
</main>
<div id="tip" hidden></div>"""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)} — sysspan</title>"
        f"<script>{_ERROR_COLLECTOR}</script><style>{_CSS}</style></head><body>"
        + body
        + f'<script type="application/json" id="sysspan-data">{data}</script>'
        + f"<script>{_JS}</script></body></html>\n"
    )


def write_html(report: Report, path: str | os.PathLike[str], title: str | None = None) -> int:
    """Write the page to ``path``; returns its size in bytes."""
    text = render_html(report, title)
    data = text.encode("utf-8", "backslashreplace")
    with private_open(path, "wb") as fh:
        fh.write(data)
    return len(data)


# --------------------------------------------------------------------------- page assets

# Runs first: any script error (or console.error) lands in <pre id="js-errors">, which a
# headless browser's --dump-dom shows, so tests can prove the page ran clean.
_ERROR_COLLECTOR = r"""
(function(){
  var errs=[];
  function show(msg){
    errs.push(String(msg));
    var el=document.getElementById('js-errors');
    if(el){el.textContent=errs.join('\n');el.hidden=false;}
  }
  window.__sysspanError=show;
  window.addEventListener('error',function(e){show('error: '+(e.message||e)+(e.lineno?' (line '+e.lineno+')':''));});
  window.addEventListener('unhandledrejection',function(e){show('unhandled rejection: '+e.reason);});
  var ce=console.error;console.error=function(){show('console.error: '+Array.prototype.join.call(arguments,' '));if(ce)ce.apply(console,arguments);};
  document.addEventListener('DOMContentLoaded',function(){if(errs.length)show('');});
})();
"""

_CSS = r"""
:root{
  --bg:#f5f6f8;--card:#fff;--ink:#1b2430;--muted:#6b7685;--line:#e5e8ec;--accent:#3b5bdb;
  --c-file:#3b82f6;--c-desc:#14b8a6;--c-network:#8b5cf6;--c-process:#f59e0b;--c-memory:#22c55e;
  --c-signal:#ec4899;--c-ipc:#b7791f;--c-other:#94a3b8;--c-error:#dc2626;--c-decision:#7c3aed;
  --sans:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,"Noto Sans",sans-serif;
  --mono:ui-monospace,"SFMono-Regular","JetBrains Mono",Menlo,Consolas,"DejaVu Sans Mono",monospace;
}
*{box-sizing:border-box}
html,body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.45 var(--sans);-webkit-font-smoothing:antialiased}
header{background:linear-gradient(120deg,#1e293b,#273a63);color:#eef2ff;padding:18px 32px 20px}
.brand{font-size:12px;letter-spacing:.12em;text-transform:uppercase;color:#a5b4fc;font-weight:600}
.logo{width:18px;height:18px;vertical-align:-4px;margin-right:8px}
h1{font-size:21px;font-weight:650;margin:6px 0 4px;font-family:var(--mono);white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.subtitle{color:#c7d2fe;font-size:13px}.subtitle code{color:#e0e7ff}
main{max-width:1440px;margin:0 auto;padding:18px 24px 40px}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:14px 18px 16px;margin:0 0 18px;box-shadow:0 1px 2px rgba(16,24,40,.04)}
section.cards{display:grid;grid-template-columns:repeat(6,1fr);gap:12px;background:none;border:0;box-shadow:none;padding:0}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:12px 16px;box-shadow:0 1px 2px rgba(16,24,40,.04)}
.card .label{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.06em}
.card .value{font-size:26px;font-weight:650;font-variant-numeric:tabular-nums;margin-top:2px}
.card .extra{color:var(--muted);font-size:12px;min-height:1em}
.card.bad .value{color:var(--c-error)}
.sec-head{display:flex;align-items:baseline;gap:14px;flex-wrap:wrap;margin-bottom:8px}
h2{font-size:16px;margin:0;font-weight:650}h3{font-size:14px;margin:18px 0 6px}
.hint{color:var(--muted);font-size:12px}
.controls{margin-left:auto;display:flex;gap:6px;align-items:center}
button{font:inherit;font-size:12px;border:1px solid var(--line);background:#fff;border-radius:6px;padding:3px 10px;cursor:pointer;color:var(--ink)}
button:hover{background:#eef2ff;border-color:#c7d2fe}
.legend{display:flex;gap:14px;flex-wrap:wrap;font-size:12px;color:var(--muted);margin:0 0 8px}
.lg{display:inline-flex;align-items:center;gap:5px}
.dot{display:inline-block;width:9px;height:9px;border-radius:3px;margin-right:6px;vertical-align:0}
.c-file{--c:var(--c-file)}.c-desc{--c:var(--c-desc)}.c-network{--c:var(--c-network)}.c-process{--c:var(--c-process)}
.c-memory{--c:var(--c-memory)}.c-signal{--c:var(--c-signal)}.c-ipc{--c:var(--c-ipc)}.c-other{--c:var(--c-other)}
.c-error{--c:var(--c-error)}.c-decision{--c:var(--c-decision)}
.dot{background:var(--c)}
.chip{display:inline-block;font-size:11px;padding:0 7px;border-radius:9px;color:var(--c);background:color-mix(in srgb,var(--c) 12%,white);border:1px solid color-mix(in srgb,var(--c) 30%,white)}
.canvas-wrap{position:relative;border:1px solid var(--line);border-radius:8px;overflow:hidden;background:#fff}
canvas{display:block;width:100%}
#tl-canvas{cursor:grab}#tl-canvas.drag{cursor:grabbing}#flame-canvas{cursor:pointer}
table{width:100%;border-collapse:collapse;font-size:13px}
th{position:sticky;top:0;background:#f8fafc;text-align:left;font-weight:600;color:#475467;font-size:12px;padding:7px 10px;border-bottom:1px solid var(--line);cursor:pointer;white-space:nowrap;user-select:none}
th.sorted-desc::after{content:" ↓";color:var(--accent)}th.sorted-asc::after{content:" ↑";color:var(--accent)}
td{padding:5px 10px;border-bottom:1px solid #f0f2f5;vertical-align:top}
tbody tr:hover{background:#f8faff}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
code,.mono{font-family:var(--mono);font-size:12.5px}
td.args code{display:block;max-width:520px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;color:#344054}
.muted{color:var(--muted)}.small{font-size:12px}
.err,.errno{color:var(--c-error)}
.errno{display:inline-block;background:#fef2f2;border:1px solid #fecaca;border-radius:9px;padding:0 7px;font-size:11.5px;margin:0 3px 2px 0;white-space:nowrap}
.bar{display:inline-block;width:70px;height:6px;background:#eef1f5;border-radius:3px;margin-right:8px;vertical-align:middle;overflow:hidden}
.bar i{display:block;height:100%;background:#6382f0;border-radius:3px}.bar i.dec{background:var(--c-decision)}
.src{font-family:var(--mono);font-size:12px;color:#0f766e;border-bottom:1px dotted #99d5cc;cursor:help}
.crumbs{font-size:12px;color:var(--muted);font-family:var(--mono);max-width:800px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
table.collapsed tbody tr:nth-child(n+26){display:none}
.more-btn{margin-top:8px}
.note{color:var(--muted);font-size:12px;margin:6px 0 0}
footer{color:var(--muted);font-size:12px;padding:4px 6px}footer ul{margin:0 0 6px;padding-left:18px}
#js-errors{color:var(--c-error);background:#fef2f2;border:1px solid #fecaca;border-radius:6px;padding:8px;white-space:pre-wrap}
#tip{position:fixed;z-index:10;pointer-events:none;background:#111827;color:#f9fafb;font-size:12px;line-height:1.4;padding:7px 9px;border-radius:6px;max-width:520px;box-shadow:0 6px 18px rgba(0,0,0,.25);white-space:pre-wrap;word-break:break-all}
#tip b{color:#fff}#tip .t-err{color:#fca5a5}
@media (max-width:1000px){section.cards{grid-template-columns:repeat(3,1fr)}}
"""

_JS = r"""
(function(){
'use strict';
var D=JSON.parse(document.getElementById('sysspan-data').textContent);
var CSSV=getComputedStyle(document.documentElement);
var CLS=D.classes, COL=CLS.map(function(c){return CSSV.getPropertyValue('--c-'+c).trim()||'#94a3b8';});
var ERR='#dc2626', DEC='#7c3aed';
var tip=document.getElementById('tip');
function fmt(ns){
  if(ns<1e3)return Math.round(ns)+' ns';
  if(ns<1e6)return +(ns/1e3).toPrecision(3)+' µs';
  if(ns<1e9)return +(ns/1e6).toPrecision(3)+' ms';
  if(ns<60e9)return +(ns/1e9).toPrecision(3)+' s';
  var m=Math.floor(ns/60e9);return m+'m '+String(Math.round(ns/1e9-m*60)).padStart(2,'0')+'s';
}
function esc(s){return String(s).replace(/[&<>"]/g,function(c){return {'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c];});}
function showTip(ev,html){tip.innerHTML=html;tip.hidden=false;
  var x=ev.clientX+14,y=ev.clientY+14,w=tip.offsetWidth,h=tip.offsetHeight;
  if(x+w>window.innerWidth-8)x=ev.clientX-w-14; if(y+h>window.innerHeight-8)y=ev.clientY-h-14;
  tip.style.left=Math.max(4,x)+'px';tip.style.top=Math.max(4,y)+'px';}
function hideTip(){tip.hidden=true;}
function setupCanvas(cv,h){var dpr=window.devicePixelRatio||1,w=cv.parentNode.clientWidth||1200;
  cv.width=Math.round(w*dpr);cv.height=Math.round(h*dpr);cv.style.height=h+'px';
  var g=cv.getContext('2d');g.setTransform(dpr,0,0,dpr,0,0);return {g:g,w:w,h:h};}
function niceStep(range,target){var raw=range/Math.max(1,target),p=Math.pow(10,Math.floor(Math.log10(raw))),m=raw/p;
  return (m<1.5?1:m<3.5?2:m<7.5?5:10)*p;}
function ellipsize(g,text,w){if(g.measureText(text).width<=w)return text;
  var lo=0,hi=text.length;while(lo<hi){var mid=(lo+hi+1)>>1;if(g.measureText(text.slice(0,mid)+'…').width<=w)lo=mid;else hi=mid-1;}
  return lo>0?text.slice(0,lo)+'…':'';}

// ------------------------------------------------------------------ timeline
function Timeline(){
  var cv=document.getElementById('tl-canvas'),rows=D.rows,T=D.timeline,names=T.names||[];
  var ROW=22,AXIS=26,ACT=46,TOP=AXIS+ACT+4,LABEL=230,total=Math.max(1,D.span_ns),NC=CLS.length;
  var act=T.act||[],AS=NC+2,actMax=1;for(var q=0;q<act.length;q+=AS){var sm=0;for(var z=1;z<=NC;z++)sm+=act[q+z];if(sm>actMax)actMax=sm;}
  var v0=0,v1=total,scroll=0,ctx=null,drag=null;
  var H=Math.min(460,TOP+Math.max(1,rows.length)*ROW+6);
  var nproc=rows.filter(function(r){return r.k!=='run';}).length;
  var exact=T.exact||null, dec=T.dec||{}, cells=T.cells||{};
  var nameCls=names.map(function(nm){var c=D.syscall_class[nm];return c==null?CLS.length-1:c;});
  function x(t,w){return LABEL+(t-v0)/(v1-v0)*(w-LABEL-8);}
  function tAt(px,w){return v0+(px-LABEL)/(w-LABEL-8)*(v1-v0);}
  function maxScroll(){return Math.max(0,rows.length*ROW-(H-TOP-4));}
  function draw(){
    ctx=setupCanvas(cv,H);var g=ctx.g,w=ctx.w;g.clearRect(0,0,w,H);
    cv.setAttribute('data-view',Math.round(v0)+' '+Math.round(v1)+' '+total+' '+Math.round(scroll));
    g.font='12px '+getComputedStyle(document.body).fontFamily;
    // axis
    var step=niceStep(v1-v0,(w-LABEL)/110);g.fillStyle='#667085';g.strokeStyle='#eef0f3';g.lineWidth=1;
    g.textBaseline='middle';
    for(var t=Math.ceil(v0/step)*step;t<=v1;t+=step){var px=Math.round(x(t,w))+.5;
      g.beginPath();g.moveTo(px,AXIS-6);g.lineTo(px,H);g.stroke();g.fillText(fmt(t),px+3,AXIS/2);}
    g.fillStyle='#98a2b3';g.fillText(nproc+' process'+(nproc==1?'':'es')+(D.hidden_rows>0?' (+'+D.hidden_rows+' not drawn)':''),10,AXIS/2);
    var pxPerNs=(w-LABEL-8)/(v1-v0);
    // whole-trace activity: stacked syscall time per bin, by class
    g.fillStyle='#475467';g.font='600 11px '+getComputedStyle(document.body).fontFamily;g.fillText('syscall activity',10,AXIS+ACT/2-6);
    g.fillStyle='#98a2b3';g.font='11px '+getComputedStyle(document.body).fontFamily;g.fillText('all processes',10,AXIS+ACT/2+8);
    g.save();g.beginPath();g.rect(LABEL,AXIS,w-LABEL,ACT);g.clip();
    var abw=T.aw,base=AXIS+ACT-2;
    for(q=0;q<act.length;q+=AS){var ax=x(T.o+act[q]*abw,w),aww=Math.max(1,abw*pxPerNs);if(ax+aww<LABEL||ax>w)continue;var yy=base;
      for(z=0;z<NC;z++){var hh=act[q+1+z]/actMax*(ACT-8);if(hh<=0)continue;g.fillStyle=COL[z];g.fillRect(ax,yy-hh,aww,hh);yy-=hh;}
      if(act[q+1+NC]>0){g.fillStyle=ERR;g.fillRect(ax,AXIS+2,aww,2);}}
    g.restore();
    g.strokeStyle='#eef0f3';g.beginPath();g.moveTo(0,TOP-2.5);g.lineTo(w,TOP-2.5);g.stroke();
    g.save();g.beginPath();g.rect(0,TOP,w,H-TOP);g.clip();
    var first=Math.max(0,Math.floor(scroll/ROW)),last=Math.min(rows.length-1,Math.ceil((scroll+H-TOP)/ROW));
    for(var i=first;i<=last;i++){
      var r=rows[i],y=TOP+i*ROW-scroll;
      if(i%2){g.fillStyle='#fafbfc';g.fillRect(0,y,w,ROW);}
      // label
      g.fillStyle=r.k==='run'?'#3b5bdb':'#1f2937';g.font=(r.k==='run'?'600 ':'')+'12px '+getComputedStyle(document.body).fontFamily;
      var indent=8+Math.min(r.d,14)*11, lab=r.n, pid=r.pid!=null?String(r.pid):'';
      g.fillText(ellipsize(g,lab,LABEL-indent-50),indent,y+ROW/2);
      g.fillStyle='#98a2b3';g.font='11px '+getComputedStyle(document.body).fontFamily;g.textAlign='right';g.fillText(pid,LABEL-8,y+ROW/2);g.textAlign='left';
      g.save();g.beginPath();g.rect(LABEL,y,w-LABEL,ROW);g.clip();
      // lifetime
      if(r.e>r.s){var a=x(r.s,w),b=x(r.e,w);g.fillStyle=r.k==='run'?'rgba(59,91,219,.10)':'rgba(100,116,139,.13)';
        g.fillRect(a,y+4,Math.max(1,b-a),ROW-8);if(r.err||(r.x!=null&&r.x!==0)){g.fillStyle=ERR;g.fillRect(Math.max(a,b-2),y+4,2,ROW-8);}}
      // decisions
      var dd=dec[i];if(dd){for(var j=0;j<dd.length;j+=3){var a2=x(dd[j],w),b2=x(dd[j]+dd[j+1],w);if(b2<LABEL||a2>w)continue;
        g.fillStyle='rgba(124,58,237,.18)';g.fillRect(a2,y+2,Math.max(1.5,b2-a2),ROW-4);g.fillStyle=DEC;g.fillRect(a2,y+2,Math.max(1.5,b2-a2),3);}}
      // syscalls
      var ex=exact?exact[i]:null;
      if(ex){for(var k=0;k<ex.length;k+=4){var s=ex[k],d=ex[k+1];var a3=x(s,w),ww=d*pxPerNs;if(a3+ww<LABEL||a3>w)continue;
          var isErr=ex[k+3]>=0;g.fillStyle=isErr?ERR:COL[nameCls[ex[k+2]]];
          g.fillRect(a3,isErr?y+5:y+7,Math.max(1,ww),isErr?ROW-10:ROW-14);}}
      else if(cells[i]){var c=cells[i],bw=T.w;for(var m=0;m<c.length;m+=4){var s2=T.o+c[m]*bw,a4=x(s2,w),ww2=bw*pxPerNs;if(a4+ww2<LABEL||a4>w)continue;
          var busy=Math.min(1,c[m+1]/bw);g.globalAlpha=.35+.65*Math.sqrt(busy);g.fillStyle=COL[c[m+2]];g.fillRect(a4,y+7,Math.max(1,ww2),ROW-14);
          g.globalAlpha=1;if(c[m+3]>0){g.fillStyle=ERR;g.fillRect(a4,y+4,Math.max(1.5,ww2),3);}}}
      g.restore();
    }
    g.restore();
    g.strokeStyle='#e5e8ec';g.beginPath();g.moveTo(LABEL-.5,AXIS);g.lineTo(LABEL-.5,H);g.moveTo(0,AXIS-.5);g.lineTo(w,AXIS-.5);g.stroke();
    if(maxScroll()>0){var trackH=H-TOP,th=Math.max(20,trackH*trackH/(rows.length*ROW)),ty=TOP+(trackH-th)*scroll/maxScroll();
      g.fillStyle='rgba(100,116,139,.35)';g.fillRect(w-5,ty,4,th);}
  }
  function zoom(f,cx){var w=ctx?ctx.w:cv.clientWidth,t=cx!=null?tAt(cx,w):(v0+v1)/2;
    var span=Math.max(1000,Math.min(total*1.05,(v1-v0)*f));var frac=cx!=null?(t-v0)/(v1-v0):.5;
    v0=t-frac*span;v1=v0+span;if(v0<-total*.02){v0=-total*.02;v1=v0+span;}if(v1>total*1.03){v1=total*1.03;v0=v1-span;}draw();}
  function hit(ev){var rect=cv.getBoundingClientRect(),px=ev.clientX-rect.left,py=ev.clientY-rect.top;
    if(py<TOP)return null;var i=Math.floor((py-TOP+scroll)/ROW);if(i<0||i>=rows.length)return null;
    return {i:i,px:px,t:tAt(px,ctx.w),r:rows[i]};}
  cv.addEventListener('wheel',function(ev){ev.preventDefault();
    if(ev.shiftKey){scroll=Math.max(0,Math.min(maxScroll(),scroll+ev.deltaY));draw();return;}
    var rect=cv.getBoundingClientRect();zoom(Math.pow(1.0015,ev.deltaY),Math.max(LABEL,ev.clientX-rect.left));},{passive:false});
  cv.addEventListener('mousedown',function(ev){drag={x:ev.clientX,y:ev.clientY,v0:v0,v1:v1,s:scroll};cv.classList.add('drag');});
  window.addEventListener('mouseup',function(){drag=null;cv.classList.remove('drag');});
  window.addEventListener('mousemove',function(ev){if(!drag)return;var w=ctx.w,dt=(ev.clientX-drag.x)/(w-LABEL-8)*(drag.v1-drag.v0);
    v0=drag.v0-dt;v1=drag.v1-dt;scroll=Math.max(0,Math.min(maxScroll(),drag.s-(ev.clientY-drag.y)));draw();});
  cv.addEventListener('dblclick',function(){v0=0;v1=total;scroll=0;draw();});
  cv.addEventListener('mouseleave',hideTip);
  cv.addEventListener('mousemove',function(ev){if(drag){hideTip();return;}var h=hit(ev);if(!h){hideTip();return;}var r=h.r;
    var head='<b>'+esc(r.n)+'</b>'+(r.pid!=null?' pid '+r.pid:'')+(r.t>1?' · '+r.t+' threads':'');
    var life=fmt(Math.max(0,r.e-r.s))+' · '+r.sc.toLocaleString()+' syscalls ('+fmt(r.ns)+')'+(r.er?' · <span class="t-err">'+r.er+' failed</span>':'');
    if(h.px<LABEL){showTip(ev,head+'\n'+life+(r.a?'\n'+esc(r.a):'')+(r.x!=null?'\nexit '+r.x:'')+(r.err?' <span class="t-err">'+esc(r.err)+'</span>':''));return;}
    var tol=4*(v1-v0)/(ctx.w-LABEL-8),ex=exact?exact[h.i]:null,best=null;
    if(ex){for(var k=0;k<ex.length;k+=4){if(ex[k]-tol<=h.t&&h.t<=ex[k]+ex[k+1]+tol){if(!best||ex[k+1]>best[1])best=[ex[k],ex[k+1],ex[k+2],ex[k+3]];}}
      if(best){showTip(ev,'<b>'+esc(names[best[2]])+'</b> '+fmt(best[1])+(best[3]>=0?' <span class="t-err">'+esc(names[best[3]])+'</span>':'')+'\nat +'+fmt(best[0])+'\n'+head);return;}}
    else if(cells[h.i]){var c=cells[h.i],b=Math.floor((h.t-T.o)/T.w);for(var m=0;m<c.length;m+=4){if(c[m]===b){
      showTip(ev,'<b>'+fmt(c[m+1])+'</b> in syscalls (mostly '+CLS[c[m+2]]+')'+(c[m+3]?' · <span class="t-err">'+c[m+3]+' failed</span>':'')+'\n'+fmt(T.o+b*T.w)+' – '+fmt(T.o+(b+1)*T.w)+'\n'+head);return;}}}
    var dd=dec[h.i];if(dd){for(var j=0;j<dd.length;j+=3){if(dd[j]<=h.t&&h.t<=dd[j]+dd[j+1]){showTip(ev,'<b>'+esc(names[dd[j+2]])+'</b> '+fmt(dd[j+1])+'\ndecision\n'+head);return;}}}
    showTip(ev,head+'\n'+life+'\nat +'+fmt(Math.max(0,h.t)));});
  document.getElementById('tl-in').onclick=function(){zoom(1/1.6);};
  document.getElementById('tl-out').onclick=function(){zoom(1.6);};
  document.getElementById('tl-reset').onclick=function(){v0=0;v1=total;scroll=0;draw();};
  window.addEventListener('resize',draw);
  draw();
}

// ------------------------------------------------------------------ flame graph
function Flame(){
  var F=D.flame,n=F.name.length,cv=document.getElementById('flame-canvas'),ROW=19;
  document.getElementById('flame-by').textContent='syscall time by '+D.flame_by+' · click a frame to zoom';
  var kids=[];for(var i=0;i<n;i++)kids.push([]);
  var depth=new Array(n);depth[0]=0;var maxD=0;
  for(i=1;i<n;i++){kids[F.parent[i]].push(i);depth[i]=depth[F.parent[i]]+1;if(depth[i]>maxD)maxD=depth[i];}
  var NC=CLS.length,focus=0,boxes=[];
  function colour(i){var k=F.kind[i];if(k<NC)return COL[k];
    if(k===NC)return hsl(F.name[i],205,30,55,84); // process: cool blue-greys
    if(k===NC+1)return '#a78bfa'; if(k===NC+2)return hsl(F.name[i],22,26,85,76); // source frames: warm
    if(k===NC+4)return '#cbd5e1';return '#e2e8f0';}
  function hsl(s,h0,hr,sat,l){var hash=0;for(var j=0;j<s.length;j++)hash=(hash*31+s.charCodeAt(j))|0;
    return 'hsl('+(h0+Math.abs(hash)%hr)+','+sat+'%,'+(l-Math.abs(hash>>8)%7)+'%)';}
  var H=Math.max(60,(maxD+1)*ROW+4);
  function draw(){var c=setupCanvas(cv,H),g=c.g,w=c.w;g.clearRect(0,0,w,H);boxes=[];
    g.font='11.5px '+getComputedStyle(document.body).fontFamily;g.textBaseline='middle';
    var anc=[],a=focus;while(a>0){a=F.parent[a];anc.push(a);}
    // ancestors of the focus span the full width
    for(var q=anc.length-1;q>=0;q--)box(anc[q],0,w,g);
    layout(focus,0,w,g);
    var crumbs=[];a=focus;while(a>=0){crumbs.unshift(F.name[a]);a=F.parent[a];}
    document.getElementById('flame-crumbs').textContent=focus?crumbs.join(' › '):'';
  }
  function box(i,x0,wd,g){var y=depth[i]*ROW;g.fillStyle=colour(i);g.fillRect(x0+.5,y+.5,Math.max(.5,wd-1),ROW-1);
    if(wd>28){g.fillStyle=F.kind[i]===NC+1?'#fff':'#111827';var label=ellipsize(g,F.name[i]+(i===0?' · '+fmt(F.value[0]):''),wd-8);if(label)g.fillText(label,x0+4,y+ROW/2);}
    boxes.push([x0,y,wd,i]);}
  function layout(i,x0,wd,g){box(i,x0,wd,g);var ks=kids[i],x=x0,v=F.value[i]||1;
    for(var j=0;j<ks.length;j++){var cw=wd*F.value[ks[j]]/v;if(cw>=.4)layout(ks[j],x,cw,g);x+=cw;}}
  function at(ev){var r=cv.getBoundingClientRect(),px=ev.clientX-r.left,py=ev.clientY-r.top;
    for(var j=boxes.length-1;j>=0;j--){var b=boxes[j];if(px>=b[0]&&px<b[0]+b[2]&&py>=b[1]&&py<b[1]+ROW)return b[3];}return -1;}
  cv.addEventListener('click',function(ev){var i=at(ev);if(i>=0){focus=i;draw();}});
  cv.addEventListener('mousemove',function(ev){var i=at(ev);if(i<0){hideTip();return;}
    var path=[],a=i;while(a>0){path.unshift(F.name[a]);a=F.parent[a];}
    var pct=F.value[0]?(100*F.value[i]/F.value[0]).toFixed(1):'0';
    showTip(ev,'<b>'+esc(F.name[i])+'</b>\n'+fmt(F.value[i])+' ('+pct+'% of syscall time) · '+F.count[i].toLocaleString()+' calls'+(path.length>1?'\n'+esc(path.join(' › ')):''));});
  cv.addEventListener('mouseleave',hideTip);
  document.getElementById('flame-reset').onclick=function(){focus=0;draw();};
  window.addEventListener('resize',draw);
  draw();
}

// ------------------------------------------------------------------ sortable tables
function Sortable(){
  Array.prototype.forEach.call(document.querySelectorAll('table.sortable'),function(tb){
    var ths=tb.querySelectorAll('th');
    Array.prototype.forEach.call(ths,function(th,col){th.addEventListener('click',function(){
      var text=th.getAttribute('data-t')==='s',desc=!th.classList.contains('sorted-desc');
      if(text&&!th.classList.contains('sorted-asc')&&!th.classList.contains('sorted-desc'))desc=false;
      Array.prototype.forEach.call(ths,function(h){h.classList.remove('sorted-desc','sorted-asc');});
      th.classList.add(desc?'sorted-desc':'sorted-asc');
      var body=tb.tBodies[0],rs=Array.prototype.slice.call(body.rows);
      function key(r){var c=r.cells[col];if(!c)return '';var v=c.getAttribute('data-v');return text?c.textContent.toLowerCase():(v!=null?parseFloat(v):parseFloat(c.textContent.replace(/,/g,''))||0);}
      rs.sort(function(a,b){var x=key(a),y=key(b);return (x<y?-1:x>y?1:0)*(desc?-1:1);});
      rs.forEach(function(r){body.appendChild(r);});});});});
}

function More(){
  Array.prototype.forEach.call(document.querySelectorAll('.more-btn'),function(b){
    var label=b.textContent;b.addEventListener('click',function(){var t=document.getElementById(b.getAttribute('data-for'));
      var c=t.classList.toggle('collapsed');b.textContent=c?label:'show fewer';});});
}

// Drives every interaction once (zoom, pan, reset, hover, flame zoom, sorting): a headless
// browser opening the page with #selftest proves the handlers run without errors.
function SelfTest(){
  if(location.hash!=='#selftest')return;
  function at(el,type,x,y,opts){var r=el.getBoundingClientRect(),o={bubbles:true,cancelable:true,clientX:r.left+x,clientY:r.top+y};
    for(var k in opts||{})o[k]=opts[k];el.dispatchEvent(type==='wheel'?new WheelEvent(type,o):new MouseEvent(type,o));}
  var tl=document.getElementById('tl-canvas'),fl=document.getElementById('flame-canvas'),w=tl.clientWidth;
  at(tl,'mousemove',w*0.5,90);at(tl,'mousemove',60,90);at(tl,'mousemove',w*0.5,40);
  at(tl,'wheel',w*0.4,90,{deltaY:-400});at(tl,'wheel',w*0.4,90,{deltaY:120,shiftKey:true});
  at(tl,'mousedown',w*0.5,90);at(window.document.body,'mousemove',w*0.5-80,70);at(window.document.body,'mouseup',0,0);
  at(tl,'mousemove',w*0.6,95);at(tl,'dblclick',w*0.5,90);
  ['tl-in','tl-out','tl-reset','flame-reset'].forEach(function(id){document.getElementById(id).click();});
  at(fl,'mousemove',40,28);at(fl,'click',40,28);at(fl,'mousemove',40,47);at(fl,'mouseleave',0,0);
  Array.prototype.forEach.call(document.querySelectorAll('.more-btn'),function(b){b.click();b.click();});
  Array.prototype.forEach.call(document.querySelectorAll('table.sortable th'),function(th){th.click();});
  var calls=document.querySelector('#table-syscalls th:nth-child(3)');if(calls)calls.click();
  at(tl,'wheel',w*0.4,90,{deltaY:-600});
  document.getElementById('selftest').textContent='done';
}

var parts=[['timeline',Timeline],['more',More],['flame graph',Flame],['tables',Sortable]],ok=true;
parts.push(['self-test',SelfTest]);
parts.forEach(function(p){try{p[1]();}catch(e){ok=false;(window.__sysspanError||console.log)(p[0]+': '+(e&&e.stack||e));}});
document.getElementById('render-status').textContent=ok?'ok':'failed';
})();
"""
