"""The gateway's event-stream encoder against botocore's decoder and an independent one.

`reference_decode` is written from the format's description (prelude: total and headers
lengths, big-endian, then a CRC32 of those 8 bytes; headers; payload; CRC32 of all before),
with a bitwise CRC-32 of its own rather than zlib's, so the two checks share no code.
"""

from __future__ import annotations

import json

import pytest
from botocore.eventstream import EventStreamBuffer

from composer.gateway import eventstream


def _crc32(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0xEDB88320 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def reference_decode(data: bytes) -> list[tuple[dict[str, str], bytes]]:
    """Every message of an event stream as (string headers, payload); checks both CRCs."""
    messages = []
    at = 0
    while at < len(data):
        total = int.from_bytes(data[at : at + 4], "big")
        headers_length = int.from_bytes(data[at + 4 : at + 8], "big")
        assert int.from_bytes(data[at + 8 : at + 12], "big") == _crc32(data[at : at + 8])
        message = data[at : at + total]
        assert len(message) == total, "truncated message"
        assert int.from_bytes(message[-4:], "big") == _crc32(message[:-4])
        headers: dict[str, str] = {}
        h = 12
        while h < 12 + headers_length:
            name_length = message[h]
            name = message[h + 1 : h + 1 + name_length].decode()
            h += 1 + name_length
            assert message[h] == 7, "only string headers are sent"
            value_length = int.from_bytes(message[h + 1 : h + 3], "big")
            headers[name] = message[h + 3 : h + 3 + value_length].decode()
            h += 3 + value_length
        messages.append((headers, message[12 + headers_length : -4]))
        at += total
    return messages


STREAM = (
    eventstream.payload_part(b"first")
    + eventstream.payload_part(b"")
    + eventstream.payload_part(bytes(range(256)) * 300)
    + eventstream.model_stream_error("it broke", eventstream.STREAM_BROKEN)
    + eventstream.internal_stream_failure("gateway bug")
)


def test_both_decoders_read_the_same_messages() -> None:
    buffer = EventStreamBuffer()
    for i in range(0, len(STREAM), 997):  # arriving in pieces that cut messages anywhere
        buffer.add_data(STREAM[i : i + 997])
    botocore = [(m.headers, m.payload) for m in buffer]
    assert botocore == reference_decode(STREAM)
    assert [h.get(":event-type") or h[":exception-type"] for h, _ in botocore] == [
        "PayloadPart",
        "PayloadPart",
        "PayloadPart",
        "ModelStreamError",
        "InternalStreamFailure",
    ]
    assert botocore[2][1] == bytes(range(256)) * 300
    assert json.loads(botocore[3][1]) == {"Message": "it broke", "ErrorCode": "StreamBroken"}


def test_a_flipped_bit_fails_both_decoders() -> None:
    from botocore.eventstream import ChecksumMismatch

    broken = bytearray(eventstream.payload_part(b"payload"))
    broken[-6] ^= 1
    buffer = EventStreamBuffer()
    buffer.add_data(bytes(broken))
    with pytest.raises(ChecksumMismatch):
        list(buffer)
    with pytest.raises(AssertionError):
        reference_decode(bytes(broken))
