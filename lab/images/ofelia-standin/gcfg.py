"""The gcfg file syntax (gopkg.in/gcfg.v1 1.2.x, what ofelia 0.3.x reads its config with), written from its rules.

parse(text) yields one Entry per section header and per variable, in file order, and raises GcfgError on a
syntax error, at the first one, as gcfg does. Mapping entries onto a schema (unknown names, value types) is
the caller's job. The rules:
- a section header is `[name]` or `[name "subsection"]`; the subsection must be double-quoted, may not be
  empty, and inside it only the escapes \\\\ and \\" are allowed;
- section and variable names: a letter, then letters, digits and `-` (no `_`, no dots);
- `;` and `#` start a comment anywhere outside double quotes, even in the middle of a value;
- a value runs to the end of the line (or to a comment); blanks around it are dropped; `"` toggles quoting
  and is removed; inside quotes `;`, `#` and blanks are kept and the escapes \\\\ \\" \\n \\t are allowed;
  outside quotes a backslash is only allowed at the end of a line, where it joins the next line;
- `name` alone (no `=`) is a "blank" variable (true for a bool, an error for a string).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass


class GcfgError(ValueError):
    """A syntax error: the whole file is refused."""


@dataclass
class Entry:
    line: int
    section: str
    subsection: str | None  # None: no subsection given
    name: str | None = None  # None: the section header itself
    blank: bool = False  # `name` without `=`
    value: str = ""


_BLANKS = " \t\r"
_VALUE_ESCAPES = {"\\": "\\", '"': '"', "n": "\n", "t": "\t"}


def _is_letter(ch):
    return ch.isascii() and ch.isalpha() or not ch.isascii() and unicodedata.category(ch).startswith("L")


def _is_digit(ch):
    return "0" <= ch <= "9" or not ch.isascii() and unicodedata.category(ch) == "Nd"


class _Scanner:
    def __init__(self, text):
        self.text, self.pos, self.line = text, 0, 1

    def error(self, msg, line=None):
        raise GcfgError("line %d: %s" % (line or self.line, msg))

    def peek(self):
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def take(self):
        ch = self.peek()
        self.pos += 1
        if ch == "\n":
            self.line += 1
        return ch

    def skip_blanks(self):
        while self.peek() and self.peek() in _BLANKS:
            self.take()

    def token(self):
        """(kind, text) of the next token: EOF, EOL, IDENT, STRING, '[', ']', '='. Comments are skipped."""
        self.skip_blanks()
        ch = self.peek()
        if not ch:
            return "EOF", ""
        if _is_letter(ch):
            start = self.pos
            while self.peek() and (_is_letter(self.peek()) or _is_digit(self.peek()) or self.peek() == "-"):
                self.take()
            return "IDENT", self.text[start:self.pos]
        self.take()
        if ch == "\n":
            return "EOL", ""
        if ch in "[]=":
            return ch, ""
        if ch in ";#":
            while self.peek() and self.peek() != "\n":
                self.take()
            return self.token()
        if ch == '"':
            return "STRING", self.subsection()
        self.error("illegal character %s" % _describe(ch))

    def subsection(self):
        """The rest of a double-quoted subsection name, unescaped (\\\\ and \\" only)."""
        out, line = [], self.line
        while True:
            ch = self.take()
            if ch in ("", "\n"):
                self.error("string not terminated", line)
            if ch == '"':
                return "".join(out)
            if ch == "\\":
                esc = self.take()
                if esc not in '\\"':
                    self.error("unknown escape sequence", line)
                ch = esc
            out.append(ch)

    def value(self):
        """A variable's value, after `=`: unquoted and unescaped, outer blanks dropped."""
        self.skip_blanks()
        out, line, quoted, keep = [], self.line, False, 0  # keep: length of out up to the last kept char
        while True:
            ch = self.peek()
            if not quoted and ch in ("", "\n", ";", "#"):
                break
            self.take()
            if ch == "" or ch == "\n":
                self.error("string not terminated", line)
            if ch == "\r":
                continue
            if ch == '"':
                quoted = not quoted
                keep = len(out)
                continue
            if ch == "\\" and quoted:
                esc = self.take()
                if esc not in _VALUE_ESCAPES:
                    self.error("unknown escape sequence", line)
                out.append(_VALUE_ESCAPES[esc])
                keep = len(out)
                continue
            if ch == "\\":
                if self.peek() == "\r":
                    self.take()
                if self.peek() != "\n":
                    self.error("unquoted '\\' must be followed by new line", line)
                self.take()  # a continuation line: backslash and newline vanish, the blanks before stay
                keep = len(out)
                continue
            out.append(ch)
            if quoted or ch not in _BLANKS:
                keep = len(out)
        return "".join(out[:keep])


def _describe(ch):
    return "U+%04X %r" % (ord(ch), ch)


def parse(text):
    """The entries of a gcfg text (str, or bytes: UTF-8, a leading BOM skipped). Raises GcfgError."""
    if isinstance(text, bytes):
        if text[:3] == b"\xef\xbb\xbf" and len(text) > 3:
            text = text[3:]
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise GcfgError("illegal UTF-8 encoding at byte %d" % exc.start) from None
    if "\0" in text:
        raise GcfgError("line %d: illegal character NUL" % (text[:text.index("\0")].count("\n") + 1))
    scanner = _Scanner(text)
    entries, section, subsection = [], None, None
    kind, lit = scanner.token()
    while kind != "EOF":
        line = scanner.line
        if kind == "EOL":
            kind, lit = scanner.token()
            continue
        if kind == "[":
            kind, section = scanner.token()
            if kind != "IDENT":
                scanner.error("expected section name")
            subsection = None
            kind, lit = scanner.token()
            if kind == "STRING":
                if lit == "":
                    scanner.error("empty subsection name")
                subsection = lit
                kind, lit = scanner.token()
            if kind != "]":
                scanner.error("expected right bracket" if subsection else "expected subsection name or right bracket")
            kind, lit = scanner.token()
            if kind not in ("EOL", "EOF"):
                scanner.error("expected EOL, EOF, or comment")
            entries.append(Entry(line, section, subsection))
        elif kind == "IDENT":
            if section is None:
                scanner.error("expected section header")
            name = lit
            kind, lit = scanner.token()
            if kind in ("EOL", "EOF"):
                entries.append(Entry(line, section, subsection, name, blank=True))
                continue
            if kind != "=":
                scanner.error("expected '='")
            entries.append(Entry(line, section, subsection, name, value=scanner.value()))
            kind, lit = scanner.token()
        else:
            scanner.error("expected section header" if section is None
                          else "expected section header or variable declaration")
    return entries
