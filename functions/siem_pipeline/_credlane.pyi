"""The redactor's text lane in C (``_credlane.c``); :class:`siem_pipeline.redact.Redactor` uses it."""

from typing_extensions import Buffer

class Lane:
    #: the scan's vector width: 2 AVX2, 1 SSSE3, 0 a byte at a time
    simd: int

    def __init__(self, words: tuple[bytes, ...], key_count: int, harmless_after: tuple[bytes | None, ...],
                 mask: bytes, simd: bool = True) -> None: ...
    def redact(self, text: bytes, credentials: Buffer | None, /) -> bytes | None: ...
    def scan(self, text: bytes, /) -> list[tuple[int, int, int]]: ...

def value_end(text: bytes, start: int, /) -> tuple[int, int] | None: ...
