"""64-bit perceptual hash (DCT) of a frame, and the Hamming distance between two hashes.

The hash: grey, resize to 32x32 (``INTER_AREA``), 2-D DCT, keep the top-left 8x8
low frequencies, and set a bit for each coefficient above the median of the 63
coefficients without the DC term. Bits are read row by row, most significant
first, and written as 16 lower-case hex digits (``FrameMetaV1.phash``).
"""

from __future__ import annotations

__all__ = ["hamming", "phash"]

import cv2
import numpy as np

_SIZE = 32
_LOW = 8
_WEIGHTS = (1 << np.arange(63, -1, -1, dtype=np.uint64)).astype(np.uint64)


def phash(image: np.ndarray) -> str:
    """Perceptual hash of an HxWx3 BGR or HxW grey uint8 image, as 16 hex digits."""
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    small = cv2.resize(gray, (_SIZE, _SIZE), interpolation=cv2.INTER_AREA)
    coeffs = cv2.dct(small.astype(np.float32))[:_LOW, :_LOW].reshape(-1)
    median = np.median(coeffs[1:])
    bits = (coeffs > median).astype(np.uint64)
    return f"{int(np.sum(bits * _WEIGHTS, dtype=np.uint64)):016x}"


def hamming(a: str, b: str) -> int:
    """Number of differing bits between two hex hashes."""
    return (int(a, 16) ^ int(b, 16)).bit_count()
