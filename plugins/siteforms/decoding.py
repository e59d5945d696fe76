"""Bytes to text: charsets (labelled, mislabelled or not at all), RFC 2047 headers, HTML.

Pure functions used by :mod:`perezvon.plugins.siteforms.parser`. None of them raises
on bad input: a form e-mail is read as well as it can be.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import dataclasses
import quopri
import re
from html.parser import HTMLParser

#: at most this many links are collected from an HTML body
MAX_LINKS = 50


# --- charsets ------------------------------------------------------------------------------------

#: labels seen in the wild that Python's codec registry does not know
_CHARSET_ALIASES = {
    "win-1251": "cp1251",
    "win1251": "cp1251",
    "windows1251": "cp1251",
    "cp-1251": "cp1251",
    "x-cp1251": "cp1251",
    "koi8r": "koi8_r",
    "koi8": "koi8_r",
    "x-koi8-r": "koi8_r",
    "koi": "koi8_r",
    "utf": "utf-8",
    "unicode-1-1-utf-8": "utf-8",
    "x-unicode20utf8": "utf-8",
}
#: single-byte Cyrillic codecs: their bytes decode whatever the text really was, so they are scored
_CYRILLIC_SINGLE_BYTE = ("cp1251", "koi8-r", "iso8859-5", "cp866", "mac-cyrillic")
_LOWER_CYRILLIC = re.compile("[а-яё]")


def lookup_codec(label: str | None) -> str | None:
    """The Python codec name of a MIME charset label, or None when unknown (or missing)."""
    if not label:
        return None
    name = str(label).strip().strip("\"'").lower()
    name = _CHARSET_ALIASES.get(name, name)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def _cyrillic_score(text: str) -> int:
    # Russian text is mostly lower-case; decoded with the wrong single-byte codec its
    # lower-case letters become upper-case ones (KOI8-R and windows-1251 swap the cases)
    return len(_LOWER_CYRILLIC.findall(text)) - 50 * text.count("\ufffd")


def decode_text(data: bytes, label: str | None) -> str:
    """Bytes of a body part or header in whatever charset they really are.

    Valid UTF-8 with non-ASCII bytes is UTF-8 whatever the label says (a
    Cyrillic single-byte text is practically never valid UTF-8). Otherwise a
    known non-Cyrillic label is trusted, and for a Cyrillic, missing or
    unknown one windows-1251 and KOI8-R are both tried and the more
    Russian-looking result wins.
    """
    if not data:
        return ""
    if data.isascii():
        return data.decode("ascii")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    codec = lookup_codec(label)
    if codec and codec not in _CYRILLIC_SINGLE_BYTE and not codec.startswith(("utf-8", "ascii")):
        try:
            return data.decode(codec)
        except (UnicodeDecodeError, LookupError):
            pass
    candidates = [c for c in (codec, "cp1251", "koi8-r") if c in _CYRILLIC_SINGLE_BYTE]
    decoded = {c: data.decode(c, errors="replace") for c in dict.fromkeys(candidates)}
    return max(decoded.values(), key=_cyrillic_score)  # ties go to the first: the declared codec


# --- headers -------------------------------------------------------------------------------------

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")


def _encoded_word_bytes(encoding: str, text: str) -> bytes:
    if encoding in "bB":
        padded = text + "=" * (-len(text) % 4)
        try:
            return base64.b64decode(padded)
        except (binascii.Error, ValueError):
            return base64.b64decode(re.sub(r"[^A-Za-z0-9+/]", "", text) + "==", validate=False)
    return quopri.decodestring(text.replace("_", " ").encode("ascii", "replace"), header=True)


def decode_header_value(value: object) -> str:
    """An RFC 2047 header (or a raw 8-bit one, as PHP ``mail()`` sends) as text on one line.

    Adjacent encoded words in one charset are joined before decoding, so a
    character split between two words (naive encoders do that) survives.
    """
    if value is None:
        return ""
    text = str(value)
    if not text.isascii():
        # compat32 keeps 8-bit header bytes as surrogate escapes: get the bytes back
        try:
            text = decode_text(text.encode("ascii", "surrogateescape"), None)
        except UnicodeEncodeError:  # already real text
            pass
    text = re.sub(r"\r?\n[ \t]*", " ", text)
    out: list[str] = []
    pending: tuple[str, bytearray] | None = None  # (charset, bytes) of the encoded words being joined
    position = 0
    for match in _ENCODED_WORD.finditer(text):
        between = text[position : match.start()]
        charset = match.group(1).split("*", 1)[0]  # RFC 2231 language suffix
        chunk = _encoded_word_bytes(match.group(2), match.group(3))
        if pending is not None and not between.strip() and pending[0].lower() == charset.lower():
            pending[1].extend(chunk)
        else:
            if pending is not None:
                out.append(decode_text(bytes(pending[1]), pending[0]))
                if between.strip():
                    out.append(between)
            else:
                out.append(between)
            pending = (charset, bytearray(chunk))
        position = match.end()
    if pending is not None:
        out.append(decode_text(bytes(pending[1]), pending[0]))
    out.append(text[position:])
    return clean_line("".join(out))


_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\u0085]+")


def clean_line(text: str, limit: int | None = None) -> str:
    """One line of text: no CR, LF or other control characters, whitespace collapsed."""
    text = " ".join(_CONTROL.sub(" ", text).split())
    return text[:limit].rstrip() if limit else text


# --- HTML to text ------------------------------------------------------------------------------

_BLOCK_TAGS = frozenset(
    {
        "p",
        "div",
        "br",
        "li",
        "ul",
        "ol",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "table",
        "section",
        "article",
        "header",
        "footer",
        "blockquote",
        "pre",
        "hr",
        "dt",
        "dd",
        "dl",
        "form",
        "fieldset",
        "address",
        "center",
        "tbody",
        "thead",
        "tfoot",
        "caption",
    }
)
_SKIPPED_TAGS = frozenset({"script", "style", "head", "title", "template", "noscript"})


class _Box:
    """Lines of text being collected: the document, or one table cell."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.buffer: list[str] = []

    def newline(self) -> None:
        line = " ".join("".join(self.buffer).split())
        if line:
            self.lines.append(line)
        self.buffer.clear()

    def finish(self) -> list[str]:
        self.newline()
        return self.lines


@dataclasses.dataclass
class _Row:
    table_depth: int
    cells: list[list[str]] = dataclasses.field(default_factory=list)
    open_cell: _Box | None = None


class _HtmlText(HTMLParser):
    """HTML to lines of text. A table row of two short cells becomes ``Label: value``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.document = _Box()
        self.boxes: list[_Box] = [self.document]
        self.rows: list[_Row] = []
        self.table_depth = 0
        self.skipping = 0
        self.links: list[str] = []
        self.open_link: tuple[_Box, int, str] | None = None  # where the text of an <a> started, its href

    # cells and rows whose end tags are missing are closed by the next one (as browsers do)
    def _close_cell(self) -> None:
        row = self.rows[-1] if self.rows else None
        if row is not None and row.open_cell is not None and self.boxes[-1] is row.open_cell:
            row.cells.append(self.boxes.pop().finish())
            row.open_cell = None

    def _close_row(self) -> None:
        if not self.rows or self.rows[-1].table_depth != self.table_depth:
            return
        self._close_cell()
        row = self.rows.pop()
        target = self.boxes[-1]
        target.newline()
        cells = [c for c in row.cells if c]
        if all(len(c) == 1 for c in cells):
            values = [c[0] for c in cells]
            if len(values) == 2:
                label, value = values
                target.lines.append(f"{label} {value}" if label.endswith(":") else f"{label}: {value}")
            elif values:
                target.lines.append(" ".join(values))
        else:  # a layout table: its cells hold blocks of their own
            for cell in cells:
                target.lines.extend(cell)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_TAGS:
            self.skipping += 1
            return
        if tag == "table":
            self.boxes[-1].newline()
            self.table_depth += 1
        elif tag == "tr":
            self._close_row()
            self.rows.append(_Row(self.table_depth))
        elif tag in ("td", "th"):
            if not self.rows or self.rows[-1].table_depth != self.table_depth:
                self.rows.append(_Row(self.table_depth))  # a cell without a row
            self._close_cell()
            box = _Box()
            self.rows[-1].open_cell = box
            self.boxes.append(box)
        elif tag == "a":
            href = (dict(attrs).get("href") or "").strip()
            if href.lower().startswith(("http://", "https://")) and len(self.links) < MAX_LINKS:
                self.links.append(href)
                self.open_link = (self.boxes[-1], len(self.boxes[-1].buffer), href)
        elif tag in _BLOCK_TAGS:
            self.boxes[-1].newline()

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_TAGS:
            return  # <script/> opens nothing
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS:
            self.skipping = max(0, self.skipping - 1)
            return
        if tag == "a" and self.open_link is not None:
            # "Страница: <a href=URL>открыть</a>" keeps its URL in the text: "Страница: открыть (URL)"
            box, start, href = self.open_link
            self.open_link = None
            if box is self.boxes[-1] and href not in "".join(box.buffer[start:]):
                box.buffer.append(f" ({href})")
        elif tag in ("td", "th"):
            self._close_cell()
        elif tag == "tr":
            self._close_row()
        elif tag == "table":
            while self.rows and self.rows[-1].table_depth == self.table_depth:
                self._close_row()
            self.table_depth = max(0, self.table_depth - 1)
            self.boxes[-1].newline()
        elif tag in _BLOCK_TAGS:
            self.boxes[-1].newline()

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.boxes[-1].buffer.append(data)

    def text(self) -> str:
        while self.table_depth:
            self.handle_endtag("table")
        while len(self.boxes) > 1:  # unclosed cells outside any row
            box = self.boxes.pop()
            self.boxes[-1].lines.extend(box.finish())
        return "\n".join(self.document.finish())


def html_to_text(html: str) -> tuple[str, list[str]]:
    """The text of an HTML body (one line per block, table rows as ``Label: value``) and its links."""
    parser = _HtmlText()
    try:
        parser.feed(html)
        parser.close()
    except (AssertionError, ValueError):  # html.parser gives up on some broken markup
        pass
    return parser.text(), parser.links
