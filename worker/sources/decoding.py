"""Bounded decoding of a body: gzip and deflate, never past the size limit however it inflates."""

from __future__ import annotations

import typing
import zlib

from worker.errors import FetchError


GZIP_MAGIC = b"\x1f\x8b"


class BodyDecoder:
    """Content-Encoding decoders whose output never exceeds the cap, whatever the input."""

    def __init__(self, encodings: str, url: str) -> None:
        self._url = url
        names = [e.strip().lower() for e in encodings.split(",") if e.strip() and e.strip().lower() != "identity"]
        self._stages = [self._stage(name) for name in reversed(names)]
        # A gzip file served as it is (feed.xml.gz, no Content-Encoding) is read as backfill
        # reads it: its first two bytes say so.
        self._sniffing, self._head = not self._stages, b""

    def _stage(self, name: str) -> typing.Any:
        if name in ("gzip", "x-gzip"):
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        if name == "deflate":
            return _Deflate()
        raise FetchError(
            f"unsupported Content-Encoding {name!r}", url=self._url, kind="encoding",
        )

    def decode(self, data: bytes, budget: int) -> bytes:
        """Decode a chunk, producing at most budget + 1 bytes (one more means: over the cap)."""
        if self._sniffing:
            data, self._head = self._head + data, b""
            if len(data) < len(GZIP_MAGIC):
                self._head = data
                return b""
            self._sniffing = False
            if data.startswith(GZIP_MAGIC):
                self._stages = [self._stage("gzip")]
        for stage in self._stages:
            try:
                data = stage.decompress(data, budget + 1)
            except zlib.error as exc:
                raise FetchError(f"corrupt compressed body: {exc}", url=self._url, kind="encoding") from None
        return data

    def held(self) -> bytes:
        """What a body too short to sniff left behind (one byte)."""
        return self._head


class _Deflate:
    """'deflate' is zlib-wrapped per the RFC, but many servers send it raw; accept both."""

    def __init__(self) -> None:
        self._inner: typing.Any = None

    def decompress(self, data: bytes, max_length: int) -> bytes:
        if self._inner is None:
            wrapped = len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            self._inner = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        return typing.cast(bytes, self._inner.decompress(data, max_length))
