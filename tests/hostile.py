"""What a hostile caller sends, as hypothesis strategies, for the fuzz tests of the serving
runtime (tests/integration/test_serving_hostile.py) and of the gateway in front of it
(tests/e2e/test_hostile_gateway.py): both serve the echo container (the answer is the body
upper-cased), so both draw from one catalogue.
"""

from __future__ import annotations

import json

from hypothesis import strategies as st

PRINTABLE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
_UTF8 = st.characters(codec="utf-8")  # no lone surrogates

#: Media types real, odd and broken, for Content-Type and Accept.
MEDIA = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "text/csv",
        "text/plain",
        "text/plain; charset=latin-1",
        "application/jsonlines",
        "application/x-npy",
        "application/octet-stream",
        "image/jpeg",
        "*/*",
        "",
        ";;;",
        ",,,",
        "a/b/c",
        "text/csv; q=abc",
        "application/json;q=0, text/csv;q=nan, */*;q=inf",
        "*/*;q=-1",
    ]
)
#: A Content-Type or Accept header's value, or no such header.
MEDIA_HEADER = st.none() | MEDIA | st.text(PRINTABLE, max_size=100)

#: Bytes, text and JSON documents; none has the words that make the echo container fail or sleep.
ECHO_BODIES = st.one_of(
    st.binary(max_size=2048),
    st.text(_UTF8, max_size=512).map(str.encode),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=12,
    ).map(lambda doc: json.dumps(doc).encode()),
).filter(lambda b: b"fail" not in b and b"sleep" not in b)

#: Header values over-long (SageMaker allows 63 to 1024 bytes where it limits one), non-ASCII
#: (UTF-8 and latin-1), or with CR, LF, NUL and other control bytes inside.
HEADER_VALUES = st.one_of(
    st.integers(1000, 12000).map(lambda n: b"a" * n),
    st.text(st.characters(min_codepoint=0x80, codec="utf-8"), min_size=1, max_size=40).map(
        str.encode
    ),
    st.binary(min_size=1, max_size=40).filter(lambda b: any(c >= 0x80 for c in b)),
    st.tuples(
        st.text(PRINTABLE, max_size=20),
        st.sampled_from([b"\r", b"\n", b"\r\n", b"\x00", b"\x7f", b"\x01", b"\r\n\r\n"]),
        st.text(PRINTABLE, max_size=20),
    ).map(lambda t: t[0].encode() + t[1] + t[2].encode()),
)
