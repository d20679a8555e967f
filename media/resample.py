"""Sample-rate conversion between 8, 16, 22.05 and 48 kHz (or any pair).

Polyphase filtering with scipy's ``resample_poly`` at the reduced ratio
(22,050 -> 8,000 is 160/441), which includes the anti-aliasing low-pass.
int16 in gives int16 out (rounded, clipped); floats stay floats.
"""

from __future__ import annotations

from math import gcd

import numpy as np
from scipy.signal import resample_poly


def resample(pcm: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Convert ``pcm`` from ``src_rate`` to ``dst_rate`` Hz."""
    if src_rate <= 0 or dst_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {src_rate} -> {dst_rate}")
    if src_rate == dst_rate:
        return pcm.copy()
    g = gcd(src_rate, dst_rate)
    out = resample_poly(pcm.astype(np.float64), dst_rate // g, src_rate // g)
    if pcm.dtype == np.int16:
        return np.clip(np.round(out), -32768, 32767).astype(np.int16)
    return out.astype(pcm.dtype if np.issubdtype(pcm.dtype, np.floating) else np.float64)
