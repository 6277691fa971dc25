"""Pack records: encode/decode round trips, every way a record can be refused, padding records
before aligned payloads, and scan_pack on torn or damaged tails. Real bytes in real files."""

from __future__ import annotations

import os
import random

import pytest
import xxhash

from imagestore.errors import IntegrityError
from imagestore.store.packs import (
    ALIGN,
    ALIGN_MIN,
    FLAG_ZSTD,
    PAD_MAGIC,
    REC,
    REC_MAGIC,
    PackWriter,
    decode_record,
    encode_chunk,
    payload_aligned,
    read_record,
    read_span,
    scan_pack,
)

rnd = random.Random(2026)
TEXT = b"the quick brown fox jumps over the lazy dog. " * 6000  # compresses well
NOISE = rnd.randbytes(256 << 10)  # does not compress


def cid_of(data: bytes) -> bytes:
    return xxhash.xxh3_128_digest(data)


def record(data: bytes, level: int | None = 1) -> bytes:
    payload, flags = encode_chunk(data, level)
    return REC.pack(REC_MAGIC, flags, len(data), len(payload), cid_of(data)) + payload


@pytest.fixture
def writer(tmp_path):
    w = PackWriter(str(tmp_path))
    yield w
    w.close()


def _fd(path: str) -> int:
    return os.open(path, os.O_RDONLY)


# -- encode / decode ---------------------------------------------------------------------

def test_compressible_data_is_stored_zstd_and_decodes_to_the_same_bytes():
    payload, flags = encode_chunk(TEXT, 1)
    assert flags == FLAG_ZSTD and len(payload) < len(TEXT) // 10
    assert decode_record(record(TEXT), cid_of(TEXT), "t") == TEXT


def test_incompressible_data_and_level_none_are_stored_raw():
    payload, flags = encode_chunk(NOISE, 1)
    assert flags == 0 and payload == NOISE  # zstd saved < 1.5%: kept raw
    payload, flags = encode_chunk(TEXT, None)
    assert flags == 0 and payload == TEXT
    assert decode_record(record(NOISE), cid_of(NOISE), "t") == NOISE
    assert decode_record(record(TEXT, None), cid_of(TEXT), "t") == TEXT


def test_writer_records_read_back_through_their_offsets(writer):
    chunks = [TEXT, NOISE[:4096], b"\x01" * 100, NOISE[:70_000]]
    offs = []
    for c in chunks:
        payload, flags = encode_chunk(c, 1)
        offs.append((writer.append(cid_of(c), len(c), payload, flags), len(payload)))
    writer.sync()
    assert writer.size == os.path.getsize(writer.path)
    fd = _fd(writer.path)
    try:
        for c, (off, stored) in zip(chunks, offs, strict=True):
            buf = read_record(fd, off, stored)
            magic, _fl, raw_len, stored_len, rid = REC.unpack_from(buf)
            assert (magic, raw_len, stored_len, rid) == (REC_MAGIC, len(c), stored, cid_of(c))
            assert decode_record(buf, cid_of(c), "t") == c
    finally:
        os.close(fd)


def test_pack_names_are_unique_and_never_reused(tmp_path):
    a, b = PackWriter(str(tmp_path)), PackWriter(str(tmp_path))
    try:
        assert a.name != b.name and a.name.startswith("pack-") and a.name.endswith(".pack")
        assert sorted(os.listdir(tmp_path)) == sorted([a.name, b.name])
    finally:
        a.close()
        b.close()


# -- every way a record is refused ---------------------------------------------------------

@pytest.mark.parametrize("data", [TEXT, NOISE], ids=["zstd", "raw"])
def test_damaged_records_are_refused_naming_chunk_and_place(data):
    good = record(data)
    cid = cid_of(data)
    hdr = bytearray(good[: REC.size])

    def refused(buf: bytes, why: str, want: bytes = cid) -> None:
        with pytest.raises(IntegrityError, match=why) as e:
            decode_record(bytes(buf), want, "pack-x.pack@96")
        assert want.hex() in e.value.message and "pack-x.pack@96" in e.value.message

    refused(good[:31], "record truncated")
    refused(b"", "record truncated")
    refused(b"ISCX" + good[4:], "record header damaged")  # magic
    refused(good, "record header damaged", want=cid_of(b"other"))  # id in header is another's
    refused(good[:-1], "record header damaged")  # shorter than its stored length
    refused(good + b"\0", "record header damaged")  # longer than its stored length
    h = bytearray(hdr)
    h[8:12] = (len(data) + 1).to_bytes(4, "little")  # raw length lies
    refused(h + good[REC.size:], "content does not match its hash" if data is NOISE
            else "content does not match its hash|compressed data damaged")
    flipped = bytearray(good)
    flipped[REC.size + len(flipped[REC.size:]) // 2] ^= 0x40  # one bit of the payload
    refused(flipped, "compressed data damaged|content does not match its hash")
    if data is TEXT:
        # a zstd payload relabelled raw: the bytes are not the chunk
        h = bytearray(hdr)
        h[4] = 0
        refused(h + good[REC.size:], "content does not match its hash")
        # raw bytes relabelled zstd: not a zstd frame
        raw = record(TEXT, None)
        h = bytearray(raw[: REC.size])
        h[4] = FLAG_ZSTD
        refused(h + raw[REC.size:], "compressed data damaged")


def test_the_record_for_a_chunk_whose_bytes_changed_is_refused():
    a, b = b"A" * 5000, b"B" * 5000
    rec_b = record(b)
    forged = REC.pack(REC_MAGIC, rec_b[4], len(b), len(rec_b) - REC.size, cid_of(a)) + rec_b[REC.size:]
    with pytest.raises(IntegrityError, match="content does not match its hash"):
        decode_record(forged, cid_of(a), "t")


# -- padding before aligned payloads -------------------------------------------------------

def test_raw_payloads_of_64k_or_more_start_on_4k_with_a_padding_record(writer):
    small = NOISE[:1000]
    off0 = writer.append(cid_of(small), len(small), small, 0)
    big = NOISE[: ALIGN_MIN]
    off1 = writer.append(cid_of(big), len(big), big, 0)
    assert off0 == 0 and (off1 + REC.size) % ALIGN == 0 and payload_aligned(off1, 0)
    writer.sync()
    fd = _fd(writer.path)
    try:
        pad = REC.unpack(os.pread(fd, REC.size, off0 + REC.size + len(small)))
        assert pad[0] == PAD_MAGIC and off0 + 2 * REC.size + len(small) + pad[3] == off1
        recs = list(scan_pack(fd, writer.size))
    finally:
        os.close(fd)
    assert [(o, r) for o, _f, _rl, _sl, r in recs] == [(0, cid_of(small)), (off1, cid_of(big))]


def test_a_gap_smaller_than_a_header_grows_by_4k(writer):
    # the first record ends 48 bytes before a 4 KiB boundary: the next payload would start
    # 16 bytes short of it, too little room for a padding header, so the gap is 16 + 4096
    first = NOISE[: ALIGN - 2 * REC.size - 16]
    writer.append(cid_of(first), len(first), first, 0)
    assert writer.size == ALIGN - REC.size - 16
    big = NOISE[:ALIGN_MIN]
    off = writer.append(cid_of(big), len(big), big, 0)
    assert off == writer.size - REC.size - len(big)
    assert off - (ALIGN - REC.size - 16) == 16 + ALIGN and (off + REC.size) % ALIGN == 0


def test_compressed_and_small_payloads_are_never_padded(writer):
    a = NOISE[: ALIGN_MIN - 1]  # raw but below the threshold
    payload, flags = encode_chunk(TEXT, 1)  # compressed, any size
    writer.append(cid_of(a), len(a), a, 0)
    off = writer.append(cid_of(TEXT), len(TEXT), payload, flags)
    assert off == REC.size + len(a) and not payload_aligned(off, flags)


# -- scan_pack on torn and damaged tails ---------------------------------------------------

def _pack(writer, chunks) -> list[int]:
    offs = []
    for c in chunks:
        payload, flags = encode_chunk(c, 1)
        offs.append(writer.append(cid_of(c), len(c), payload, flags))
    writer.sync()
    return offs


def _scan(path: str) -> list[bytes]:
    fd = _fd(path)
    try:
        return [r for *_x, r in scan_pack(fd, os.fstat(fd).st_size)]
    finally:
        os.close(fd)


def test_scan_pack_stops_before_a_torn_tail(writer):
    chunks = [TEXT, NOISE[:ALIGN_MIN], NOISE[:5000], b"\x07" * 3000]
    offs = _pack(writer, chunks)
    ids = [cid_of(c) for c in chunks]
    assert _scan(writer.path) == ids
    end = writer.size
    with open(writer.path, "rb") as f:
        full = f.read()
    for cut, keep in [(end - 1, 3),  # last payload one byte short
                      (offs[3] + REC.size, 3),  # header of the last, no payload
                      (offs[3] + 10, 3),  # half a header
                      (offs[2] + REC.size + 1, 2),
                      (offs[1] - 1, 1),  # inside the padding record's hole
                      (REC.size - 1, 0), (0, 0)]:
        with open(writer.path, "wb") as f:
            f.write(full[:cut])
        assert _scan(writer.path) == ids[:keep], cut


def test_scan_pack_stops_at_garbage_and_at_a_length_past_the_end(writer):
    chunks = [TEXT, NOISE[:5000], b"\x07" * 3000]
    offs = _pack(writer, chunks)
    ids = [cid_of(c) for c in chunks]
    with open(writer.path, "r+b") as f:
        f.seek(offs[1])
        f.write(b"JUNK")
    assert _scan(writer.path) == ids[:1]
    with open(writer.path, "r+b") as f:
        f.seek(offs[1])
        f.write(REC_MAGIC)
        f.seek(offs[1] + 12)
        f.write((1 << 30).to_bytes(4, "little"))  # stored length past the end of the file
    assert _scan(writer.path) == ids[:1]


def test_scan_pack_ends_at_zeros_after_the_last_record(writer):
    chunks = [TEXT, NOISE[:5000]]
    _pack(writer, chunks)
    with open(writer.path, "ab") as f:  # a file extended by a crash before its data landed
        f.write(bytes(4096))
    assert _scan(writer.path) == [cid_of(c) for c in chunks]


def test_read_span_is_short_only_at_the_end_of_the_file(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(NOISE[:10_000])
    fd = _fd(str(p))
    try:
        assert read_span(fd, 9_000, 500) == NOISE[9_000:9_500]
        assert read_span(fd, 9_000, 5_000) == NOISE[9_000:10_000]
        assert read_span(fd, 20_000, 10) == b""
    finally:
        os.close(fd)
