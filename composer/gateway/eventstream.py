"""AWS event-stream framing: the body of InvokeEndpointWithResponseStream's answer.

One message is a prelude (total length, headers length, the prelude's CRC32), the headers
(name, type 7 = string, value), the payload, and the CRC32 of everything before it; integers
are big-endian. botocore's `EventStreamBuffer` decodes exactly this. The headers of the two
message kinds the gateway sends are encoded once: a PayloadPart costs one header copy, two
CRCs and a join.
"""

from __future__ import annotations

import json
import struct
import zlib

CONTENT_TYPE = "application/vnd.amazon.eventstream"
_STRING = 7
_PRELUDE = struct.Struct(">II")
_CRC = struct.Struct(">I")


def encode_headers(headers: dict[str, str]) -> bytes:
    """Event-stream headers, every value a string."""
    out = bytearray()
    for name, value in headers.items():
        raw_name, raw_value = name.encode("utf-8"), value.encode("utf-8")
        out += bytes([len(raw_name)]) + raw_name + bytes([_STRING])
        out += struct.pack(">H", len(raw_value)) + raw_value
    return bytes(out)


def encode_message(headers: bytes, payload: bytes) -> bytes:
    """One message from encoded headers and a payload."""
    total = 12 + len(headers) + len(payload) + 4
    prelude = _PRELUDE.pack(total, len(headers))
    head = prelude + _CRC.pack(zlib.crc32(prelude))
    crc = zlib.crc32(payload, zlib.crc32(headers, zlib.crc32(head)))
    return b"".join((head, headers, payload, _CRC.pack(crc)))


_PAYLOAD_PART = encode_headers(
    {
        ":event-type": "PayloadPart",
        ":content-type": "application/octet-stream",
        ":message-type": "event",
    }
)


def _exception_headers(kind: str) -> bytes:
    return encode_headers(
        {":exception-type": kind, ":content-type": "application/json", ":message-type": "exception"}
    )


_MODEL_STREAM_ERROR = _exception_headers("ModelStreamError")
_INTERNAL_STREAM_FAILURE = _exception_headers("InternalStreamFailure")

#: ModelStreamError's ErrorCode values (botocore's sagemaker-runtime model documents both).
STREAM_BROKEN = "StreamBroken"
TIMED_OUT = "ModelInvocationTimeExceeded"


def payload_part(data: bytes) -> bytes:
    """A PayloadPart event carrying `data` as its Bytes."""
    return encode_message(_PAYLOAD_PART, data)


def model_stream_error(message: str, error_code: str) -> bytes:
    """The ModelStreamError exception event {Message, ErrorCode}; the stream ends after it."""
    body = json.dumps({"Message": message, "ErrorCode": error_code}).encode()
    return encode_message(_MODEL_STREAM_ERROR, body)


def internal_stream_failure(message: str) -> bytes:
    """The InternalStreamFailure exception event {Message}: the gateway itself failed."""
    return encode_message(_INTERNAL_STREAM_FAILURE, json.dumps({"Message": message}).encode())
