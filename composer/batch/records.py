"""Splitting an input object into records and packing records into requests.

SplitType Line: every non-blank line is a record (a trailing newline or blank lines add none).
SplitType None: the whole object is one record. MultiRecord fills each request with as many
whole records as fit in MaxPayloadInMB; SingleRecord sends one record per request.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from .params import Compression, SplitType, Strategy


class RecordError(Exception):
    """An object cannot be sent as asked; the message names the record."""


@dataclass(frozen=True)
class MiniBatch:
    """Records [first, first + count) of one object (numbered from 1 in messages)."""

    index: int
    first: int
    count: int
    body: bytes

    @property
    def records(self) -> str:
        last = self.first + self.count
        return f"record {self.first + 1}" if self.count == 1 else f"records {self.first + 1}-{last}"


def decompress(data: bytes, compression: Compression, name: str) -> bytes:
    if compression == "None":
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise RecordError(
            f"{name}: cannot be read as Gzip ({exc}); drop --compression Gzip for plain files"
        ) from None


def split_records(data: bytes, split_type: SplitType) -> list[bytes]:
    """The records of one object; a line keeps no newline of its own."""
    if split_type == "None":
        return [data]
    return [line.rstrip(b"\r") for line in data.split(b"\n") if line.strip()]


def _frame(record: bytes, split_type: SplitType) -> bytes:
    return record + b"\n" if split_type == "Line" else record


def mini_batches(
    records: Sequence[bytes],
    *,
    split_type: SplitType,
    strategy: Strategy,
    limit: int | None,
    name: str,
) -> Iterator[MiniBatch]:
    """Requests in record order; a record larger than `limit` fails the whole object."""
    index = 0
    first = 0
    parts: list[bytes] = []
    size = 0
    for number, record in enumerate(records):
        framed = _frame(record, split_type)
        if limit is not None and len(framed) > limit:
            raise RecordError(
                f"{name}: record {number + 1} has {len(framed)} bytes, more than MaxPayloadInMB "
                f"allows ({limit} bytes); raise --max-payload-mb or split the record"
            )
        if strategy == "SingleRecord" or split_type == "None":
            yield MiniBatch(index, number, 1, framed)
            index += 1
            first = number + 1
            continue
        if parts and limit is not None and size + len(framed) > limit:
            yield MiniBatch(index, first, len(parts), b"".join(parts))
            index += 1
            first, parts, size = number, [], 0
        parts.append(framed)
        size += len(framed)
    if parts:
        yield MiniBatch(index, first, len(parts), b"".join(parts))


def assemble(answers: Sequence[bytes], assemble_with: str) -> bytes:
    """The output object: answers in request order; Line ends each answer with a newline."""
    if assemble_with == "None":
        return b"".join(answers)
    return b"".join(a if a.endswith(b"\n") else a + b"\n" for a in answers)
