"""Completion file bytes as text: the encoding checks (UTF-8 unless told otherwise; UTF-16
and Excel workbooks named as such), the ``sep=`` line and the delimiter sniff, and
:class:`CompletionFileError`, the error for a file that cannot be used as a whole.
"""

from __future__ import annotations

import codecs
import io
import math
import re

from credly_ops.completion_cells import preview

MB = 1024 * 1024
#: how much of the header line the delimiter count looks at
_SNIFF_CHARS = 64 * 1024
_SEP_LINE = re.compile(r"sep=(.)\s*", re.IGNORECASE)


class CompletionFileError(ValueError):
    """The file as a whole cannot be read; ``message`` says why, in a sentence."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def sniff_delimiter(header_line: str) -> str:
    """The most frequent of ``,`` ``;`` and tab outside double quotes; a comma on a tie."""
    counts = {",": 0, ";": 0, "\t": 0}
    quoted = False
    for ch in header_line[:_SNIFF_CHARS]:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    return max(counts, key=counts.__getitem__)


def format_mb(size: int) -> str:
    """A size in megabytes as a message says it (rounded up, one decimal at most)."""
    value = math.ceil(size * 10 / MB) / 10
    return f"{value:g}" if value == int(value) else f"{value:.1f}"


def text_and_delimiter(text: str) -> tuple[str, str]:
    """The text without an Excel ``sep=`` first line, and the delimiter: the one that line
    names, else the one :func:`sniff_delimiter` finds in the header line."""
    end = text.find("\n")
    sep = _SEP_LINE.fullmatch(text if end < 0 else text[:end])
    if sep is not None and sep.group(1) in ",;\t|":
        return ("" if end < 0 else text[end + 1 :]), sep.group(1)
    return text, sniff_delimiter(_first_line(text))


def _first_line(text: str) -> str:
    """The first line with something on it (the header, for the delimiter count)."""
    for line in io.StringIO(text, newline=""):
        if line.strip():
            return line
    return ""


# --- decoding --------------------------------------------------------------------------------

_BOM = codecs.BOM_UTF8


#: how much of a file the UTF-16 test looks at
_UTF16_SAMPLE = 4096


def looks_like_utf16(data: bytes) -> bool:
    """Whether bytes with no byte-order mark read as UTF-16: a CSV header is ASCII, so in
    UTF-16 every other byte is zero (the odd ones little-endian, the even ones big-endian),
    which UTF-8 text with a stray NUL never shows."""
    sample = data[:_UTF16_SAMPLE]
    if len(sample) < 4 or 0 not in sample:
        return False
    even, odd = sample[0::2], sample[1::2]
    even_zeros, odd_zeros = even.count(0) / len(even), odd.count(0) / len(odd)
    return max(even_zeros, odd_zeros) >= 0.5 and min(even_zeros, odd_zeros) <= 0.1


def decode_completion_bytes(data: bytes, encoding: str | None = None) -> tuple[str, str]:
    """Bytes → text and the codec used; refuses anything but UTF-8 unless told the encoding."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) and encoding is None:
        raise CompletionFileError(
            "The file is UTF-16 (Excel's 'Unicode Text'); save it as 'CSV UTF-8 (Comma "
            "delimited)' and upload again."
        )
    if encoding is None and looks_like_utf16(data):
        raise CompletionFileError(
            "The file looks like UTF-16 without a byte-order mark (every other byte is empty); "
            "save it as 'CSV UTF-8 (Comma delimited)' and upload again."
        )
    if data.startswith(b"PK\x03\x04"):
        raise CompletionFileError(
            "The file is an Excel workbook or another zip archive, not a CSV file; in Excel "
            "choose Save As → 'CSV UTF-8 (Comma delimited)' and upload again."
        )
    codec = "utf-8"
    if encoding is not None:
        try:
            codec = codecs.lookup(encoding).name
        except LookupError:
            raise CompletionFileError(
                f"'{preview(encoding)}' is not an encoding this reader knows; "
                "choose UTF-8 or Windows-1252."
            ) from None
    skip = len(_BOM) if data.startswith(_BOM) else 0
    try:
        text = data[skip:].decode(codec)
    except UnicodeDecodeError as exc:
        offset = skip + exc.start
        if codec in ("utf-8", "utf-8-sig"):
            raise CompletionFileError(
                f"The file is not UTF-8 (first bad byte at offset {offset}); if it was saved "
                "by Excel on Windows, choose Windows-1252 and upload again."
            ) from None
        name = "Windows-1252" if codec == "cp1252" else codec
        raise CompletionFileError(
            f"The file is not valid {name} (byte 0x{data[offset]:02X} at offset {offset} "
            "has no character); choose the encoding it was saved in and upload again."
        ) from None
    except (UnicodeError, LookupError) as exc:
        raise CompletionFileError(
            f"The file cannot be read as {codec} ({preview(str(exc))}); "
            "choose UTF-8 or Windows-1252."
        ) from None
    return text.removeprefix("\ufeff"), codec
