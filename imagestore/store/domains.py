"""Dedup domains: which captures may share chunks.

A chunk id is the xxh3-128 of the chunk's bytes in the **home domain** (0: the store owner's
local tenant; every store written before domains existed holds only home-domain ids). Any
other tenant captures in a domain of its own, numbered 1..2**32-1, whose chunk ids are::

    tag     u32 big-endian, the domain number (never 0)
    check   blake2b(h || tag, digest_size=6, person=PERSON)
    keyed   blake2b(h || tag, digest_size=6, person=PERSON, key=the store's dedup key)

with ``h`` = xxh3-128 of the content. The same content so has a different id in every domain,
and the index, gc, materialize and replication (all of which work on ids) never let one
domain's capture find, reuse or read another domain's chunk. The keyed part makes an id
unpredictable without the key (nobody can aim content at another domain's id), and only a
capture needs the key. ``tag`` and ``check`` let a record be checked with nothing but itself
(:func:`id_matches`): every region, zone and blob container verifies, repairs and rebuilds its
index without the key or a table. Why, and what the separation rests on: docs/architecture.md
("Dedup domains").
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

HOME = 0
TAG_BYTES = 4
PART = 6  # bytes of the check and of the keyed part
MAX_DOMAIN = (1 << 32) - 1
PERSON = b"imagestore-dd1"
KEY_BYTES = 32


def check_domain(domain: int) -> int:
    """``domain`` when it is a valid domain number, else ValueError (a programming error:
    domains come from the gallery's table, never from a request)."""
    if not isinstance(domain, int) or isinstance(domain, bool) or not 0 <= domain <= MAX_DOMAIN:
        raise ValueError(f"dedup domain {domain!r} is not in 0..{MAX_DOMAIN}")
    return domain


@dataclass(frozen=True)
class Domain:
    """A dedup domain a capture runs in: its number and the store's dedup key (unused, and
    empty, for the home domain)."""

    tag: int = HOME
    key: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        check_domain(self.tag)
        if self.tag != HOME and len(self.key) != KEY_BYTES:
            raise ValueError(f"dedup domain {self.tag}: the key must be {KEY_BYTES} bytes")

    def chunk_id(self, content_hash: bytes) -> bytes:
        """The id in this domain of a chunk whose xxh3-128 is ``content_hash``."""
        if self.tag == HOME:
            return content_hash
        tag = self.tag.to_bytes(TAG_BYTES, "big")
        msg = content_hash + tag
        return (tag + _check(msg)
                + hashlib.blake2b(msg, digest_size=PART, person=PERSON, key=self.key).digest())


HOME_DOMAIN = Domain()


def _check(msg: bytes) -> bytes:
    return hashlib.blake2b(msg, digest_size=PART, person=PERSON).digest()


def id_matches(cid: bytes, content_hash: bytes) -> bool:
    """True when ``cid`` is the id, in the home domain or in the domain it names, of content
    whose xxh3-128 is ``content_hash`` (as far as can be told without the key: the tag and the
    48-bit check; what a record check needs)."""
    if cid == content_hash:
        return True
    tag = cid[:TAG_BYTES]
    return (len(cid) == 16 and tag != bytes(TAG_BYTES)
            and cid[TAG_BYTES : TAG_BYTES + PART] == _check(content_hash + tag))


def tag_of(cid: bytes) -> int:
    """The domain a non-home id names (meaningless for a home-domain id)."""
    return int.from_bytes(cid[:TAG_BYTES], "big")
