"""Reading an uploaded export within bounds, before anything of it is built.

An upload is untrusted: a small zip can unpack to gigabytes, a small JSON can nest past the
parser's recursion limit or hold millions of values, each a Python object. So the zip's end record
is read before `zipfile` lists its members, every unpacked byte (the zip's members and the gzip
inside, all against one `Budget`) is counted as it is read, and the JSON's nesting and size are
measured on its bytes before it is parsed. What an export means is `portable`'s business.
"""

from __future__ import annotations

import gzip
import io
import json
import lzma
import struct
import zipfile
import zlib
from array import array
from collections.abc import Callable
from itertools import accumulate
from typing import Any

from openmemory_core.errors import InvalidInput

MAX_UPLOAD_BYTES = 64 * 1024 * 1024
#: What the zip's members and the gzip inside may unpack to, all together.
MAX_IMPORT_UNPACKED_BYTES = 64 * 1024 * 1024
MAX_ZIP_MEMBERS = 64
MAX_ZIP_DIRECTORY_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 64
#: Values in one JSON document, an object counting 3 (in memory it costs about three strings): each
#: becomes a Python object. A 64 MB export of memories with their history holds about 3.5 million
#: (some 200 MB of objects); 64 MB of `{},` is 22 million objects, and 20 GB of pydantic errors.
MAX_JSON_VALUES = 6_000_000

_MB = 1024 * 1024
_READ_CHUNK = 64 * 1024  # unpacked bytes read at a time: the overshoot past the budget
_SCAN_CHUNK = 1024 * 1024  # JSON bytes measured at a time: the event loop gets the GIL in between


# ---- the zip, and the gzip inside it ---------------------------------------------------------------

# What zipfile and its decompressors raise on a broken or hostile archive: damaged streams, offsets
# pointing outside the file (ValueError, IndexError), undecodable names, encrypted members (RuntimeError).
_DAMAGED = (
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    struct.error,
    OSError,
    EOFError,
    ValueError,
    IndexError,
    KeyError,
    RuntimeError,
    NotImplementedError,
)


class Budget:
    """The unpacked bytes one upload may still read: every member and the gzip inside draw on it.
    Bytes are counted as they come out of the decompressor, never taken from a header."""

    def __init__(self) -> None:
        self.left = MAX_IMPORT_UNPACKED_BYTES

    def read(self, read: Callable[[int], bytes], name: str) -> bytearray:
        out = bytearray()
        while chunk := read(min(_READ_CHUNK, self.left + 1)):
            out += chunk
            self.left -= len(chunk)
            if self.left < 0:
                raise InvalidInput(
                    f"the export unpacks to more than {MAX_IMPORT_UNPACKED_BYTES // _MB} MB (at {name}); "
                    "import it in parts"
                )
        return out


def unpack(data: bytes, budget: Budget) -> tuple[bytearray | None, bytearray | None]:
    """memories.json and memories.jsonl.gz (still gzipped) from the zip, within the budget."""
    _check_directory(data)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
            if len(members) > MAX_ZIP_MEMBERS:
                raise InvalidInput(f"the zip holds more than {MAX_ZIP_MEMBERS} files: it is not an export")
            found: list[bytearray | None] = []
            for name in ("memories.json", "memories.jsonl.gz"):
                matches = [i for i in members if not i.is_dir() and i.filename.rsplit("/", 1)[-1] == name]
                if len(matches) > 1:
                    raise InvalidInput(f"the zip holds {name} twice")
                if not matches:
                    found.append(None)
                    continue
                with archive.open(matches[0]) as handle:
                    found.append(budget.read(handle.read, name))
    except _DAMAGED as exc:
        raise InvalidInput("the zip file is damaged (or encrypted)") from exc
    return found[0], found[1]


def _check_directory(data: bytes) -> None:
    """Refuse a zip that declares too many members, before `zipfile` builds an object for each of
    them: its end record says how many there are and how large their directory is."""
    end = len(data) - 22  # zipfile's own search: the end record, or the last one in the comment
    if end < 0 or data[end : end + 4] != b"PK\x05\x06" or data[-2:] != b"\0\0":
        end = data.rfind(b"PK\x05\x06", max(0, len(data) - 22 - 0xFFFF))
    if end < 0 or len(data) - end < 22:
        raise InvalidInput("the zip file is damaged (it has no end record)")
    members = int.from_bytes(data[end + 10 : end + 12], "little")
    size = int.from_bytes(data[end + 12 : end + 16], "little")
    if end >= 20 and data[end - 20 : end - 16] == b"PK\x06\x07":  # zip64: its own end record, before
        record = data[end - 76 : end - 20] if end >= 76 else b""
        if record[:4] != b"PK\x06\x06":
            raise InvalidInput("the zip file is damaged (its zip64 end record is missing)")
        members = int.from_bytes(record[32:40], "little")
        size = int.from_bytes(record[40:48], "little")
    if members > MAX_ZIP_MEMBERS or size > MAX_ZIP_DIRECTORY_BYTES:
        raise InvalidInput(f"the zip holds more than {MAX_ZIP_MEMBERS} files: it is not an export")


def gunzip(blob: bytearray, budget: Budget, name: str) -> bytearray:
    """A gzip member's content, within the budget."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(blob)) as unpacked:
            return budget.read(unpacked.read, name)
    except (OSError, EOFError, zlib.error) as exc:
        raise InvalidInput(f"{name} is not valid gzip") from exc


# ---- JSON, measured before it is parsed ----------------------------------------------------------

_STRUCTURE = b'"[]{},'
_NOT_STRUCTURE = bytes(sorted(set(range(256)) - set(_STRUCTURE)))
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # as signed bytes: +1 opens, -1 closes


class NotJson(InvalidInput):
    """The bytes are not JSON at all (as opposed to JSON too large or too deep)."""


def load_json(blob: bytes | bytearray, what: str) -> Any:
    """The JSON document, if it is within the depth and value limits."""
    check_shape(blob, what)
    return parse_json(blob, what)


def parse_json(blob: bytes | bytearray, what: str) -> Any:
    """`json.loads`, its failures as `InvalidInput`: call it on bytes `check_shape` has measured."""
    try:
        return json.loads(blob)
    except RecursionError as exc:  # not reached after check_shape; the last guard against a 500
        raise InvalidInput(f"{what} is nested more than {MAX_JSON_DEPTH} levels deep") from exc
    except ValueError as exc:  # UnicodeDecodeError included
        raise NotJson(f"{what} is not valid JSON") from exc


def check_shape(blob: bytes | bytearray, what: str) -> None:
    """Refuse JSON nested deeper than MAX_JSON_DEPTH or holding more than MAX_JSON_VALUES values.
    Linear, and in bytes operations: per chunk, the escapes `\\\\` and `\\"` are dropped, then every
    byte but quotes, brackets and commas; what lies between quotes is a string's, the rest counts."""
    if json.detect_encoding(blob) not in ("utf-8", "utf-8-sig"):
        raise NotJson(f"{what} is not valid JSON (it must be UTF-8)")
    in_string, level, values = False, 0, 0
    start = 0
    while start < len(blob):
        end = min(start + _SCAN_CHUNK, len(blob))
        while end < len(blob) and blob[end - 1] == 0x5C:  # keep an escape and what it escapes together
            end += 1
        chunk = bytes(blob[start:end])
        if b"\\" in chunk:
            chunk = chunk.replace(b"\\\\", b"").replace(b'\\"', b"")
        parts = chunk.translate(None, _NOT_STRUCTURE).split(b'"')
        outside = b"".join(parts[1 if in_string else 0 :: 2])
        in_string ^= len(parts) % 2 == 0
        objects, arrays = outside.count(b"{"), outside.count(b"[")
        opens = objects + arrays
        values += 3 * objects + arrays + outside.count(b",")
        if values > MAX_JSON_VALUES:
            raise InvalidInput(
                f"{what} holds too many values (more than {MAX_JSON_VALUES:,}, an object counting 3); "
                "import it in parts"
            )
        steps = array("b", outside.translate(_STEPS, b","))
        if level + opens > MAX_JSON_DEPTH and max(accumulate(steps, initial=level)) > MAX_JSON_DEPTH:
            raise InvalidInput(f"{what} is nested more than {MAX_JSON_DEPTH} levels deep")
        level += sum(steps)
        start = end
