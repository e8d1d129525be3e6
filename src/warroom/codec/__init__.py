"""Stream filters between a source and storage, and the self-describing object format.

Every stored object starts with a header naming its codec chain (:mod:`warroom.codec.header`),
so a read needs no configuration: the :class:`Decoder` builds the chain the header names (zstd,
then AES-256-GCM when encrypted, :mod:`warroom.codec.aesgcm`). Objects written before
encryption existed (format version 1) read as they always did.
"""

from __future__ import annotations

from warroom.codec.header import MAGIC
from warroom.codec.stream import ChunkReader, Decoder, Digest, Encoder

__all__ = ["MAGIC", "ChunkReader", "Decoder", "Digest", "Encoder"]
