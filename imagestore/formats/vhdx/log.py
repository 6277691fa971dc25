"""VHDX log replay (MS-VHDX 2.3), in memory.

When the header's LogGuid is non-zero, the active sequence of valid log entries (CRC-32C
checked, sequence numbers consecutive) is replayed into an *overlay*: 4 KiB sectors (file
offset -> bytes) that every later read of metadata, BAT, bitmaps and payload consults. The
user's file is never written. A non-zero LogGuid without valid entries is an empty log.
Hostile logs are bounded: in sectors replayed, bytes checksummed and how far the file may grow.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from ...errors import BadImage
from . import structs as S
from .crc32c import checksum_ok

#: at most this many 4 KiB sectors (256 MiB) are replayed in memory
MAX_OVERLAY_SECTORS = 65536
#: a log may extend the file (LastFileOffset) by at most this much
MAX_EXTENSION = 1 * S.GiB
#: at most this many bytes are checksummed while searching the log (hostile overlapping entries)
MAX_CRC_BYTES = 64 * S.MiB
SECTOR = 4096


class LogEntry:
    """One valid log entry (2.3.1): its place in the log, sequence number, file offsets and
    the 4 KiB sectors it writes, as (file offset, bytes)."""

    __slots__ = ("pos", "length", "seq", "flushed_file_offset", "last_file_offset", "sectors")

    def __init__(self, pos: int, length: int, seq: int, flushed: int, last: int,
                 sectors: list[tuple[int, bytes]]) -> None:
        self.pos, self.length, self.seq = pos, length, seq
        self.flushed_file_offset, self.last_file_offset = flushed, last
        self.sectors = sectors


def parse_log_entry(log: bytes, pos: int, guid: uuid.UUID, budget: list[int]) -> LogEntry | None:
    """Parse and fully validate the log entry at ``pos`` (2.3.1), or return None.

    The log is a circular buffer: an entry may wrap around its end."""
    size = len(log)
    if log[pos : pos + 4] != S.LOG_ENTRY_SIGNATURE:
        return None
    (_sig, _crc, length, _tail, seq, ndesc, _res, lguid, flushed, last) = (
        S.LOG_ENTRY_HEADER_FMT.unpack_from(log, pos)
    )
    if lguid != guid.bytes_le or seq == 0 or length == 0 or length % SECTOR:
        return None
    if length > size:
        return None
    # header (64 bytes) + 32-byte descriptors fill the first sectors (2.3.1.2)
    desc_sectors = -(-(64 + 32 * ndesc) // SECTOR)
    if desc_sectors > length // SECTOR:
        return None
    entry = log[pos : pos + length]
    if len(entry) < length:  # wraps around the end of the circular log
        entry += log[: length - len(entry)]
    budget[0] -= length
    if budget[0] < 0:
        raise OverflowError("log search budget exhausted")
    if not checksum_ok(entry):
        return None
    sectors: list[tuple[int, bytes]] = []
    data_idx = desc_sectors
    for i in range(ndesc):
        d = entry[64 + 32 * i : 96 + 32 * i]
        sig = d[:4]
        dseq, foff = struct.unpack_from("<Q", d, 24)[0], struct.unpack_from("<Q", d, 16)[0]
        if dseq != seq or foff % SECTOR:
            return None
        if sig == b"zero":  # 2.3.1.3 zero descriptor
            (zlen,) = struct.unpack_from("<Q", d, 8)
            if zlen % SECTOR or zlen // SECTOR > MAX_OVERLAY_SECTORS:
                return None
            zero = bytes(SECTOR)
            sectors.extend((foff + k * SECTOR, zero) for k in range(zlen // SECTOR))
        elif sig == b"desc":  # 2.3.1.4 data descriptor + 2.3.1.5 data sector
            if (data_idx + 1) * SECTOR > length:
                return None
            ds = entry[data_idx * SECTOR : (data_idx + 1) * SECTOR]
            data_idx += 1
            hi, lo = struct.unpack_from("<I", ds, 4)[0], struct.unpack_from("<I", ds, 4092)[0]
            if ds[:4] != b"data" or ((hi << 32) | lo) != seq:
                return None
            # the sector's first 8 and last 4 bytes are kept in the descriptor
            sectors.append((foff, d[8:16] + ds[8:4092] + d[4:8]))
        else:
            return None
    return LogEntry(pos, length, seq, flushed, last, sectors)


def find_active_sequence(
    log: bytes, guid: uuid.UUID, bad: Callable[[str], BadImage]
) -> list[LogEntry]:
    """2.3.2: the active sequence is the run of consecutive valid entries (sequence numbers
    increasing by one, each following the previous in the circular log) with the highest
    sequence number. Like qemu, the head's Tail field is not required to match."""
    size = len(log)
    budget = [MAX_CRC_BYTES + 4 * size]
    cache: dict[int, LogEntry | None] = {}

    def at(pos: int) -> LogEntry | None:
        if pos not in cache:
            cache[pos] = parse_log_entry(log, pos, guid, budget)
        return cache[pos]

    best: list[LogEntry] = []
    try:
        pos = log.find(S.LOG_ENTRY_SIGNATURE)
        while pos != -1:
            if pos % SECTOR == 0 and at(pos) is not None:
                seqs = [at(pos)]
                seen = {pos}
                while True:
                    cur = seqs[-1]
                    nxt_pos = (cur.pos + cur.length) % size
                    if nxt_pos in seen:
                        break
                    nxt = at(nxt_pos)
                    if nxt is None or nxt.seq != cur.seq + 1:
                        break
                    seqs.append(nxt)
                    seen.add(nxt_pos)
                if not best or seqs[-1].seq > best[-1].seq:
                    best = seqs
            pos = log.find(S.LOG_ENTRY_SIGNATURE, pos + 1)
    except OverflowError:
        raise bad("log needs replay but is too complex to replay in memory") from None
    return best


@dataclass
class Replay:
    """The result of replaying a log: sectors by file offset, the file size the log implies,
    and how many entries were replayed."""

    overlay: dict[int, bytes]
    file_size: int
    entries: int


def replay(
    log: bytes, guid: uuid.UUID, file_size: int, bad: Callable[[str], BadImage]
) -> Replay:
    """Replay the active sequence of ``log`` (the log region's bytes) in memory.

    ``bad(reason)`` builds the error for a corrupt or hostile log. Returns an empty overlay
    when the log holds no valid entries."""
    entries = find_active_sequence(log, guid, bad)
    if not entries:
        return Replay({}, file_size, 0)
    overlay: dict[int, bytes] = {}
    last_file_offset = file_size
    for e in entries:
        # 2.3.1.1: FlushedFileOffset beyond the file means the file was truncated.
        if e.flushed_file_offset > file_size:
            raise bad(
                f"log is corrupt: it expects the file to hold at least "
                f"{e.flushed_file_offset} bytes, the file has {file_size} (truncated?)"
            )
        last_file_offset = max(last_file_offset, e.last_file_offset)
        for off, data in e.sectors:
            if off < S.REGION_TABLE1_OFFSET:
                # 2.3: the log never updates the file identifier or the headers
                raise bad(f"log entry writes into the file identifier or headers (offset {off})")
            overlay[off] = data
            if len(overlay) > MAX_OVERLAY_SECTORS:
                raise bad("log describes too many sectors to replay in memory")
    # 2.3.1.1: LastFileOffset: the file is (virtually) extended to at least this size.
    if last_file_offset > file_size + MAX_EXTENSION:
        raise bad(
            f"log extends the file to {last_file_offset} bytes, implausibly far beyond its "
            f"{file_size} bytes"
        )
    new_size = max(file_size, -(-last_file_offset // S.MiB) * S.MiB)
    return Replay(overlay, new_size, len(entries))
