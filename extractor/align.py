"""Gold field values <-> BIO tags over OCR words.

``align_document`` finds, for every gold value, the contiguous run of words (in reading order)
that reproduces it best, and tags it ``B-FIELD I-FIELD ...``. SROIE values are not verbatim
substrings of the OCR text (comma spacing, ``RM`` prefixes, multi-line addresses, words split
or joined by OCR, small OCR errors), so matching is done on *lenient keys* (whitespace removed,
case folded) with a fuzzy substring search: a semi-global edit distance (Sellers 1980) of the
value against the concatenated word keys, which finds every occurrence in one pass and lets a
match start or end inside a word (``TOTAL:60.30``; such spans are recorded as not exact).

``span_value`` is the one function that turns a span of words back into a value; the
extractor's decoder calls it too, so what alignment measures is what the model can output.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher

import numpy as np

from extractor.document import RECEIPT_SCHEMA, Document, FieldSpec, Schema, Word
from extractor.normalize import (
    amounts_in,
    collapse_ws,
    lenient_key,
    normalize_amount,
    normalize_value,
    parse_amount,
    parse_date,
    strict_key,
)

# Minimum similarity (1 - edits / value length) to accept a match, per field type. Amounts
# must match exactly: a fuzzy amount is a different amount, and a wrong total label is worse
# than none. Dates allow one OCR slip in ten characters.
THRESHOLDS: dict[str, float] = {"text": 0.8, "date": 0.9, "amount": 1.0}
# How many OCR lines a span may cover: one for dates and amounts, three for a one-line text
# field (long shop names wrap, SROIE 011 over three lines), any number for multiline fields.
MAX_LINES: dict[str, int] = {"text": 3, "date": 1, "amount": 1}
MAX_CANDIDATES = 64  # match ends examined per value (the best ones by edit distance)


@dataclass
class Alignment:
    """BIO tags for one word list and what each field aligned to.

    ``tags`` has one label of ``Schema.labels`` per word; ``spans`` maps an aligned field to
    its word indices; ``unaligned`` maps a field with a gold value that could not be aligned to
    the reason; ``match_score`` is the similarity (0-1) of the chosen (or best rejected) match;
    ``exact`` says whether the span covers the value with whole words and no edit.
    """

    tags: list[str]
    spans: dict[str, list[int]] = field(default_factory=dict)
    unaligned: dict[str, str] = field(default_factory=dict)
    match_score: dict[str, float] = field(default_factory=dict)
    exact: dict[str, bool] = field(default_factory=dict)


@dataclass
class Match:
    """One occurrence of a value: word span ``[first, last]``, similarity and tie-breakers."""

    first: int
    last: int
    score: float
    partial: bool
    priority: int = 0

    @property
    def indices(self) -> list[int]:
        return list(range(self.first, self.last + 1))


# -- span <-> value --------------------------------------------------------------------------

_DATE_IN = re.compile(r"\d{1,4}[/\-.]\d{1,2}[/\-.]\d{2,4}|\d{1,2}[\s\-/]?[A-Za-z]{3,9}[\s\-/,]*"
                      r"\d{2,4}")


def span_value(words: Sequence[Word], indices: Iterable[int], spec: FieldSpec) -> str:
    """The value a span of words denotes: texts joined in reading order, normalised for the type.

    An amount or date span whose words carry extra characters (``TOTAL:60.30``,
    ``Date:19/10/2018``) yields the one amount / date inside it, which is what a person would
    write down for that span.
    """
    raw = " ".join(words[i].text for i in sorted(set(indices)))
    value = normalize_value(raw, spec.type)
    if spec.type == "amount" and parse_amount(value) is None:
        # Search the words as printed: normalising removed the spaces between numbers.
        found = amounts_in(raw)
        if found:  # the last amount with decimals ("TOTAL 2 12.00" -> "12.00"), else the last
            return next((f for f in reversed(found) if "." in f), found[-1])
    if spec.type == "date":
        m = _DATE_IN.search(value)
        if m and m.group() != value and parse_date(m.group()) is not None:
            return m.group()
    return value


_AMOUNT_CHARS = re.compile(r"[-0-9,.\s]*")


def value_spans(words: Sequence[Word], spec: FieldSpec, value: str, max_len: int
                ) -> list[tuple[int, ...]]:
    """Every span of at most ``max_len`` words whose ``span_value`` has ``value``'s lenient key,
    in (start, end) order: exactly the spans a brute-force ``span_value`` over all of them finds.

    Which spans spell a value is what a value's probability sums over (DPO's value log-prob,
    the RL rewards), and an amount or a date is spelled by most spans around it
    (``Date: 19/10/2018 Cashier ...``): about a thousand per value with 48-word spans, so one
    ``span_value`` per span (rebuilding and searching the span's text, O(max_len)) cost 80% of
    a DPO run. Here the work per span is constant for amounts and one regex search for dates;
    ``span_value`` itself runs only where its result is not already determined.
    """
    key = lenient_key(value)
    if not key:
        return []
    keys = [lenient_key(w.text) for w in words]
    # the shortcuts join word texts with one space, as span_value does once a blank word
    # is not among them
    texts = [collapse_ws(w.text) for w in words]
    blank = not all(texts)
    if spec.type == "amount" and not blank:
        return _amount_spans(words, spec, key, keys, max_len)
    if spec.type == "date" and not blank:
        return _date_spans(texts, key, keys, max_len)
    out = []
    for s in range(len(words)):
        joined = ""
        for e in range(s, min(len(words), s + max_len)):
            joined += keys[e]
            # every span_value is the span's text or a part of it, so its key is in ``joined``
            if key in joined and lenient_key(span_value(words, range(s, e + 1), spec)) == key:
                out.append(tuple(range(s, e + 1)))
    return out


def _amount_spans(words: Sequence[Word], spec: FieldSpec, key: str, keys: list[str],
                  max_len: int) -> list[tuple[int, ...]]:
    """``value_spans`` for an amount. ``span_value`` gives the span's text when it is an amount
    as a whole (then its key is ``joined``), else the last amount with decimals found in it, else
    the last amount, else the text. ``amounts_in`` cannot match a space, so the amounts found
    in a span are those found in each of its words: found once per word here."""
    last_dot_of: list[str | None] = []
    last_of: list[str | None] = []
    plain: list[bool] = []
    for w in words:
        amounts = amounts_in(w.text)
        last_dot_of.append(next((f for f in reversed(amounts) if "." in f), None))
        last_of.append(amounts[-1] if amounts else None)
        plain.append(bool(_AMOUNT_CHARS.fullmatch(w.text)))
    out = []
    for s in range(len(words)):
        joined, tail_plain = "", True
        last_dot: str | None = None
        last: str | None = None
        for e in range(s, min(len(words), s + max_len)):
            joined += keys[e]
            last_dot = last_dot_of[e] or last_dot
            last = last_of[e] or last
            tail_plain = tail_plain and (e == s or plain[e])
            if key not in joined:
                continue
            found = last_dot or last
            if joined == key or (tail_plain and found is not None and lenient_key(found) == key):
                # the span may be an amount as a whole (``RM 12.00``): let span_value decide
                if lenient_key(span_value(words, range(s, e + 1), spec)) == key:
                    out.append(tuple(range(s, e + 1)))
            elif found is not None and lenient_key(found) == key:
                # a word after the first has a character no amount has: not an amount as a
                # whole, so span_value returns the amount found
                out.append(tuple(range(s, e + 1)))
    return out


def _date_spans(texts: list[str], key: str, keys: list[str], max_len: int
                ) -> list[tuple[int, ...]]:
    """``value_spans`` for a date: ``span_value`` gives the first date found in the span's
    text (a date pattern can cross words: ``19 Oct 2018``), else the text; the text is grown a
    word at a time instead of rebuilt per span."""
    out = []
    for s in range(len(texts)):
        joined, text = "", ""
        for e in range(s, min(len(texts), s + max_len)):
            joined += keys[e]
            text = texts[e] if e == s else f"{text} {texts[e]}"
            if key not in joined:
                continue
            m = _DATE_IN.search(text)
            if m and m.group() != text and parse_date(m.group()) is not None:
                found = m.group()
            else:
                found = text
            if lenient_key(found) == key:
                out.append(tuple(range(s, e + 1)))
    return out


def tags_to_spans(tags: Sequence[str], schema: Schema | None = None) -> dict[str, list[list[int]]]:
    """Word-index spans per field from a BIO tag sequence (BIO-consistent decoding).

    ``B-X`` starts a span; ``I-X`` continues an open ``X`` span and starts one otherwise (a
    stray ``I-`` is read as a beginning); ``O`` closes. Keys are the field names (the label
    suffix lower-cased, or the schema's spelling when ``schema`` is given).
    """
    names = {f.name.upper(): f.name for f in schema.fields} if schema else {}
    spans: dict[str, list[list[int]]] = {}
    open_field: str | None = None
    for i, tag in enumerate(tags):
        if tag == "O":
            open_field = None
            continue
        if len(tag) < 3 or tag[:2] not in ("B-", "I-"):
            raise ValueError(f"tag {i} ({tag!r}) is not O, B-<FIELD> or I-<FIELD>")
        name = names.get(tag[2:], tag[2:].lower())
        if tag[0] == "I" and open_field == name:
            spans[name][-1].append(i)
        else:
            spans.setdefault(name, []).append([i])
            open_field = name
    return spans


def spans_to_tags(n_words: int, spans: dict[str, list[int]]) -> list[str]:
    """BIO tags for ``n_words`` words from one contiguous index list per field."""
    tags = ["O"] * n_words
    for name, idx in spans.items():
        for k, i in enumerate(sorted(idx)):
            tags[i] = f"{'B' if k == 0 else 'I'}-{name.upper()}"
    return tags


# -- fuzzy search ----------------------------------------------------------------------------

@dataclass
class Stream:
    """The words' lenient keys concatenated, with each character's word and each word's range."""

    text: str
    owner: np.ndarray  # (n_chars,) word index of each character
    start: list[int]  # per word: first character
    end: list[int]  # per word: one past its last character
    codes: np.ndarray  # (n_chars,) code points of ``text``

    @classmethod
    def of(cls, words: Sequence[Word]) -> Stream:
        keys = [lenient_key(w.text) for w in words]
        start, end, pos = [], [], 0
        for k in keys:
            start.append(pos)
            pos += len(k)
            end.append(pos)
        owner = np.repeat(np.arange(len(keys)), [len(k) for k in keys])
        text = "".join(keys)
        return cls(text, owner, start, end, np.array([ord(c) for c in text], dtype=np.int32))


def edit_matrix(pattern: str, stream: Stream) -> np.ndarray:
    """Semi-global edit distances: ``D[i, j]`` = fewest edits turning ``pattern[:i]`` into some
    substring of the stream ending at character ``j`` (free start, Sellers 1980).

    Rows are vectorised: with ``E[j] = min(diagonal, vertical)``, the horizontal recurrence
    ``D[j] = min(E[j], D[j-1] + 1)`` equals ``min_k<=j (E[k] - k) + j``, a running minimum.
    """
    m, n = len(pattern), len(stream.text)
    d = np.zeros((m + 1, n + 1), dtype=np.int32)  # row 0: a match may start anywhere
    col = np.arange(n + 1, dtype=np.int32)
    for i in range(1, m + 1):
        e = np.empty(n + 1, dtype=np.int32)
        e[0] = i
        e[1:] = np.minimum(d[i - 1, :-1] + (stream.codes != ord(pattern[i - 1])),
                           d[i - 1, 1:] + 1)
        d[i] = np.minimum.accumulate(e - col) + col
    return d


def traceback(d: np.ndarray, pattern: str, text: str, end: int) -> int:
    """Start character of the optimal alignment ending at ``end`` (diagonal moves first)."""
    i, j = len(pattern), end
    while i > 0:
        if j > 0 and d[i, j] == d[i - 1, j - 1] + (text[j - 1] != pattern[i - 1]):
            i, j = i - 1, j - 1
        elif d[i, j] == d[i - 1, j] + 1:
            i -= 1
        else:
            j -= 1
    return j


def find_matches(pattern: str, stream: Stream,
                 min_score: float) -> tuple[list[tuple[int, int, float]], tuple[int, int, float]]:
    """Character ranges ``(start, end, similarity)`` of the pattern's occurrences scoring at
    least ``min_score`` (best first), and the single best occurrence however poor it is (so
    callers can say how close the closest thing was). The stream must not be empty.
    """
    d = edit_matrix(pattern, stream)
    last = d[-1, 1:]  # cost of a match ending after character j (j = 1..n)
    max_cost = int(np.floor(len(pattern) * (1.0 - min_score) + 1e-9))
    ends = np.flatnonzero(last <= max_cost) + 1
    ends = ends[np.argsort(last[ends - 1], kind="stable")][:MAX_CANDIDATES]

    def occurrence(e: int) -> tuple[int, int, float]:
        s = min(traceback(d, pattern, stream.text, e), e - 1)
        return s, e, 1.0 - float(d[-1, e]) / len(pattern)

    return [occurrence(int(e)) for e in ends], occurrence(int(np.argmin(last)) + 1)


# -- choosing an occurrence ------------------------------------------------------------------

_PAYMENT = re.compile(r"CHANGE|CASH|TENDER|PAID|CARD|VISA|MASTER|DEBIT|CREDIT|BAL")
_PART = re.compile(r"SUB|EXCL|QTY|QUANTITY|ITEM|DISC|SAVING")
_TAX = re.compile(r"GST|TAX|SST|SERVICE")
_DUE = re.compile(r"ROUND|NETT|NET AMOUNT|AMOUNT DUE|GRAND|PAYABLE")


def amount_priority(words: Sequence[Word], match: Match) -> int:
    """How much the visual row of a match looks like the amount due.

    3: a TOTAL row (``TOTAL``, ``TOTAL INCL GST``, ``NET TOTAL``); 2: rounded / nett / payable
    without the word TOTAL; 1: a partial total (``SUB-TOTAL``, ``TOTAL EXCL GST``, ``TOTAL
    QTY``, a tax total); 0: nothing said; -1: cash tendered, change, card payments.
    """
    y0 = min(words[i].box[1] for i in match.indices)
    y1 = max(words[i].box[3] for i in match.indices)
    row = " ".join(w.text for w in words if y0 <= (w.box[1] + w.box[3]) / 2 <= y1).upper()
    if "TOTAL" in row:
        if _PART.search(row):
            return 1
        if "INCL" in row or not _TAX.search(row):
            return 3
        return 1
    if _DUE.search(row):
        return 2
    return -1 if _PAYMENT.search(row) else 0


def _boundary_ok(stream: Stream, s: int, e: int) -> bool:
    """A number must not be cut out of a longer number inside one word (``160.30``)."""
    first, last = int(stream.owner[s]), int(stream.owner[e - 1])
    before = stream.text[s - 1] if s > stream.start[first] else ""
    after = stream.text[e] if e < stream.end[last] else ""
    if before.isdigit() and stream.text[s].isdigit():
        return False
    return not (stream.text[e - 1].isdigit() and (after.isdigit() or (
        after == "." and stream.text[e + 1: e + 2].isdigit())))


def match_value(words: Sequence[Word], value: str, spec: FieldSpec, stream: Stream | None = None,
                taken: set[int] | None = None) -> tuple[Match | None, Match | None, str]:
    """(best acceptable occurrence, closest occurrence, why close ones were rejected).

    Occurrences are ranked by similarity, then (amounts) by how much their row looks like the
    amount due, then whole-word matches before partial ones, then reading order.
    """
    stream = stream or Stream.of(words)
    taken = taken or set()
    patterns = [lenient_key(value)]
    if spec.type == "amount":
        patterns.append(lenient_key(normalize_amount(value)))
    threshold = THRESHOLDS[spec.type]
    max_lines = 10**9 if spec.multiline else MAX_LINES[spec.type]
    found: dict[tuple[int, int], Match] = {}
    closest: Match | None = None
    rejected = ""
    for pattern in dict.fromkeys(p for p in patterns if p):
        matches, (bs, be, bscore) = find_matches(pattern, stream, threshold)
        if closest is None or bscore > closest.score:
            closest = Match(int(stream.owner[bs]), int(stream.owner[be - 1]), bscore, True)
        for s, e, score in matches:
            first, last = int(stream.owner[s]), int(stream.owner[e - 1])
            m = Match(first, last, score, s != stream.start[first] or e != stream.end[last])
            if spec.type in ("amount", "date") and not _boundary_ok(stream, s, e):
                rejected = rejected or "is part of a longer number"
                continue
            if len({words[i].line for i in m.indices}) > max_lines:
                rejected = rejected or f"spans more than {max_lines} line(s)"
                continue
            if taken & set(m.indices):
                rejected = rejected or "overlaps an earlier field's span"
                continue
            if spec.type == "amount":
                m.priority = amount_priority(words, m)
            key = (first, last)
            if key not in found or found[key].score < m.score:
                found[key] = m
    if not found and spec.type in ("amount", "date"):
        found = {(m.first, m.last): m for m in same_value_matches(words, value, spec, taken)}
    if not found:
        return None, closest, rejected
    best = min(found.values(), key=lambda m: (-round(m.score, 6), -m.priority, m.partial,
                                              m.first))
    return best, closest, ""


def same_value_matches(words: Sequence[Word], value: str, spec: FieldSpec,
                       taken: set[int]) -> list[Match]:
    """Spans of one to three words on one line that denote the same amount / date as
    ``value`` although printed differently (``43.70`` for ``43.7``, ``06/04/18`` for
    ``06/04/2018``). A fallback for when no spelling matches; such spans are never exact.
    """
    parse = parse_amount if spec.type == "amount" else parse_date
    target = parse(value)
    if target is None:
        return []
    out = []
    for i in range(len(words)):
        for j in range(i, min(i + 3, len(words))):
            if words[j].line != words[i].line or taken & set(range(i, j + 1)):
                break
            got = span_value(words, range(i, j + 1), spec)
            if parse(got) == target:
                m = Match(i, j, SequenceMatcher(None, lenient_key(got), lenient_key(value))
                          .ratio(), True)
                if spec.type == "amount":
                    m.priority = amount_priority(words, m)
                out.append(m)
                break
    # "DATE: 06/04/18" denotes the date too; keep the smallest spans only.
    return [m for m in out if not any(o is not m and m.first <= o.first and o.last <= m.last
                                      for o in out)]


def align_document(doc: Document, schema: Schema = RECEIPT_SCHEMA,
                   words: list[Word] | None = None) -> Alignment:
    """BIO tags over ``words`` (default ``doc.words``) for the document's gold values.

    Fields are aligned in schema order and a later field never takes a word an earlier one
    holds. Fields without a gold value are simply left out; those with one that cannot be
    aligned are listed in ``unaligned`` with the reason.
    """
    words = doc.words if words is None else words
    gold = doc.gold or {}
    out = Alignment(tags=["O"] * len(words))
    stream = Stream.of(words)
    taken: set[int] = set()
    for spec in schema.fields:
        value = gold.get(spec.name)
        if value is None or not str(value).strip():
            continue
        if not stream.text:
            out.unaligned[spec.name] = "the document has no words"
            continue
        best, closest, rejected = match_value(words, str(value), spec, stream, taken)
        if best is None:
            out.unaligned[spec.name] = _reason(words, value, spec, closest, rejected)
            out.match_score[spec.name] = round(closest.score, 4) if closest else 0.0
            continue
        out.spans[spec.name] = best.indices
        out.match_score[spec.name] = round(best.score, 4)
        out.exact[spec.name] = best.score == 1.0 and not best.partial
        taken.update(best.indices)
    out.tags = spans_to_tags(len(words), out.spans)
    return out


def _reason(words: Sequence[Word], value: str, spec: FieldSpec, closest: Match | None,
            rejected: str) -> str:
    need = THRESHOLDS[spec.type]
    if closest is None:
        return f"no occurrence of {value!r}"
    text = " ".join(words[i].text for i in closest.indices)
    if rejected:
        return f"{value!r}: every close match (e.g. {text!r}) {rejected}"
    return f"{value!r}: closest words {text!r} have similarity {closest.score:.2f} < {need:.2f}"


# -- measuring -------------------------------------------------------------------------------

@dataclass
class FieldStats:
    """Counts over documents with a gold value for one field."""

    present: int = 0
    aligned: int = 0
    strict: int = 0  # span_value(span) == gold after whitespace collapsing
    lenient: int = 0  # ... after removing all whitespace and folding case

    def add(self, other: FieldStats) -> None:
        self.present += other.present
        self.aligned += other.aligned
        self.strict += other.strict
        self.lenient += other.lenient

    def shares(self) -> dict[str, float]:
        n = max(self.present, 1)
        return {"present": self.present, "aligned": self.aligned / n, "strict": self.strict / n,
                "lenient": self.lenient / n}


@dataclass
class AlignmentReport:
    """Per-field alignment counts over documents and examples of what failed.

    ``examples["unaligned"]``: gold values no span matched (with the reason);
    ``examples["not_reproduced"]``: aligned, but the span's value differs from the gold even
    under the lenient key (with what it decodes to).
    """

    fields: dict[str, FieldStats]
    examples: dict[str, list[dict[str, str]]] = field(
        default_factory=lambda: {"unaligned": [], "not_reproduced": []})
    documents: int = 0

    @property
    def overall(self) -> FieldStats:
        total = FieldStats()
        for s in self.fields.values():
            total.add(s)
        return total

    def export(self) -> dict:
        rows = {name: s.shares() for name, s in self.fields.items()}
        rows["overall"] = self.overall.shares()
        return {"documents": self.documents, "fields": rows, "examples": self.examples}


def word_passes(doc: Document, passes: str) -> list[list[Word]]:
    """The word lists to try: ``main`` (``doc.words``), ``union`` (main and every variant) or
    one variant's name (the main words when ``doc.ocr`` ends with that name)."""
    if passes == "main":
        return [doc.words]
    if passes == "union":
        return [doc.words, *doc.variants.values()]
    if passes in doc.variants:
        return [doc.variants[passes]]
    if doc.ocr == passes or doc.ocr.endswith(f":{passes}"):
        return [doc.words]
    raise ValueError(f"document {doc.id!r} has no OCR pass {passes!r} (main: {doc.ocr!r}, "
                     f"variants: {sorted(doc.variants)})")


def evaluate_alignment(docs: Iterable[Document], schema: Schema = RECEIPT_SCHEMA,
                       passes: str = "main", max_examples: int = 40,
                       progress: bool = False) -> AlignmentReport:
    """Share of gold fields aligned and reproduced by ``span_value`` (strict / lenient keys).

    With several passes (``union``) a field counts when *any* pass aligns / reproduces it: the
    ceiling an extractor that merges OCR variants could reach.
    """
    from tqdm import tqdm

    report = AlignmentReport({f.name: FieldStats() for f in schema.fields})
    for doc in tqdm(list(docs), desc=f"align ({passes})", unit="doc", disable=not progress):
        report.documents += 1
        results = []
        for words in word_passes(doc, passes):
            al = align_document(doc, schema, words)
            results.append((words, al))
        for spec in schema.fields:
            gold = (doc.gold or {}).get(spec.name)
            if gold is None or not str(gold).strip():
                continue
            st = report.fields[spec.name]
            st.present += 1
            got = [span_value(w, al.spans[spec.name], spec) for w, al in results
                   if spec.name in al.spans]
            st.aligned += bool(got)
            st.strict += any(strict_key(g) == strict_key(gold) for g in got)
            st.lenient += any(lenient_key(g) == lenient_key(gold) for g in got)
            if any(lenient_key(g) == lenient_key(gold) for g in got):
                continue
            kind = "not_reproduced" if got else "unaligned"
            if len(report.examples[kind]) < max_examples:
                problem = (f"decoded {got[0]!r}, gold {gold!r}" if got else
                           results[0][1].unaligned.get(spec.name, "not aligned"))
                report.examples[kind].append({"doc": doc.id, "field": spec.name,
                                              "gold": str(gold), "problem": problem})
    return report


def ocr_ceiling(docs: Sequence[Document], schema: Schema = RECEIPT_SCHEMA,
                key: str = "lenient") -> dict[str, dict[str, float]]:
    """Per-field share of gold values some span reproduces (``key``: ``strict``/``lenient``),
    from the main OCR pass alone (``single``) and from the best over all variants (``union``).

    This is the OCR ceiling of a span-extracting model: it cannot output a value no span
    reproduces.
    """
    if key not in ("strict", "lenient"):
        raise ValueError(f"key must be 'strict' or 'lenient', got {key!r}")
    out: dict[str, dict[str, float]] = {}
    for passes, name in (("main", "single"), ("union", "union")):
        rep = evaluate_alignment(docs, schema, passes, max_examples=0)
        rows = {f: s.shares()[key] for f, s in rep.fields.items()}
        rows["overall"] = rep.overall.shares()[key]
        out[name] = rows
    return out
