"""SHA-256 over a stream as it passes by, so a dump is hashed without a second read."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator


class Hashed:
    """Wraps a chunk stream; ``hexdigest``/``size`` are final once the stream is exhausted."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks
        self._hash = hashlib.sha256()
        self.size = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            self._hash.update(chunk)
            self.size += len(chunk)
            yield chunk

    def hexdigest(self) -> str:
        return self._hash.hexdigest()
