"""report.html's texts: a few rejected texts per rule (a contaminated one
around its first eval match, marked), and duplicate pairs, a removed
duplicate beside the member its cluster kept with the passages they share
marked (runs of at least MIN_SHARED words in the same order in both,
difflib's matching blocks; of MIN_SHARED_CHARS characters for scripts
written without spaces)."""

from __future__ import annotations

import difflib
import html
import re
from typing import Any

MIN_SHARED, MIN_SHARED_CHARS = 3, 12
WORDS = re.compile(r"\s+|\S+")
CHARS = re.compile(r"\s+|\S")


def marked(text: str, other: str) -> str:
    """`text` as HTML, its passages shared with `other` in <mark>."""
    by_char = text.count(" ") * 20 < len(text)  # a script without spaces
    token, least = (CHARS, MIN_SHARED_CHARS) if by_char else (WORDS, MIN_SHARED)
    mine, theirs = token.findall(text), token.findall(other)
    words = [t for t in mine if not t.isspace()]
    matcher = difflib.SequenceMatcher(
        None, words, [t for t in theirs if not t.isspace()], autojunk=False
    )
    shared = [False] * len(words)
    for block in matcher.get_matching_blocks():
        if block.size >= least:
            shared[block.a : block.a + block.size] = [True] * block.size
    out, w, open_mark = [], 0, False
    for token in mine:
        if token.isspace():
            out.append(html.escape(token))
            continue
        if shared[w] != open_mark:
            out.append("<mark>" if shared[w] else "</mark>")
            open_mark = shared[w]
        out.append(html.escape(token))
        w += 1
    return "".join(out) + ("</mark>" if open_mark else "")


def pairs_section(pairs: list[dict[str, Any]]) -> str:
    """The section's body: one row per pair, kept member left."""
    rows = []
    for pair in pairs:
        kept, removed = pair["kept"], pair["removed"]
        similarity = removed.get("similarity")
        estimate = f"{similarity:.2f}" if similarity is not None else "-"
        rows.append(
            f"<tr><td>{html.escape(removed['rule'] or '')}<br>MinHash {estimate}</td>"
            f"<td><b>{html.escape(str(kept['id']))}</b> (kept)"
            f"<pre>{marked(kept['text'], removed['text'])}{'…' if kept['truncated'] else ''}</pre></td>"
            f"<td><b>{html.escape(str(removed['id']))}</b> (removed)"
            f"<pre>{marked(removed['text'], kept['text'])}{'…' if removed['truncated'] else ''}</pre>"
            "</td></tr>"
        )
    return (
        "<p class='note'>Removed duplicates beside the member their cluster kept (clusters "
        "whose id hashes lowest, the same whatever the workers); passages of at least "
        f"{MIN_SHARED} words that both hold, in order, are marked. The first 600 characters "
        "of each.</p><table class='pairs'><tr><th>rule</th><th>kept</th><th>removed</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def samples_section(m: dict[str, Any], profile: dict[str, Any]) -> str:
    """The rejected samples' body: a few texts per rule."""
    samples = profile.get("samples", [])
    if not m["config"]["output"].get("rejected_text"):
        body = "<p class='note'>output.rejected_text is off: no rejected text is shown.</p>"
    elif not samples:
        body = "<p class='note'>Nothing was rejected.</p>"
    else:
        rows = "".join(
            f"<tr><td>{html.escape(s['stage'])}</td><td>{html.escape(s['rule'])}</td>"
            f"<td>{html.escape(str(s['id']))}</td><td>{html.escape(s['reason'] or '')}</td>"
            f"<td><pre>{_sample_text(s)}{'…' if s['truncated'] else ''}</pre></td></tr>"
            for s in samples
        )
        body = (
            "<table><tr><th>stage</th><th>rule</th><th>id</th><th>reason</th>"
            f"<th>text</th></tr>{rows}</table>"
        )
    return body


def _sample_text(sample: dict[str, Any]) -> str:
    """A sample's text as HTML; a passage it names (`mark`) in <mark>."""
    text = sample["text"]
    if "mark" not in sample:
        return html.escape(text)
    a, b = sample["mark"]
    before = "…" if sample.get("offset") else ""
    return (
        f"{before}{html.escape(text[:a])}<mark>{html.escape(text[a:b])}</mark>"
        f"{html.escape(text[b:])}"
    )
