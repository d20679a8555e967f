"""Sample-rate conversion between 8, 16, 22.05 and 48 kHz (or any pair of rates).

Polyphase filtering with scipy's ``resample_poly`` at the reduced ratio
(22,050 -> 8,000 is up 160, down 441), whose Kaiser-windowed FIR is also the
anti-aliasing low-pass when going down. No state is kept between calls: it is
meant for whole prompts and recordings, not for a stream cut into frames.
"""

from __future__ import annotations

from math import gcd

import numpy as np
from scipy.signal import resample_poly

__all__ = ["resample"]


def resample(pcm: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Convert mono ``pcm`` from ``src_rate`` to ``dst_rate`` Hz.

    int16 in gives int16 out (rounded, clipped to the int16 range); float32
    or float64 in gives the same dtype out, unclipped. The output has
    ``ceil(len(pcm) * dst_rate / src_rate)`` samples. Equal rates return a copy.
    Raises ValueError for non-positive rates or non-1-D input, TypeError for
    other dtypes.
    """
    if src_rate <= 0 or dst_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {src_rate} -> {dst_rate}")
    if pcm.ndim != 1:
        raise ValueError(f"resample takes mono (1-D) audio, got shape {pcm.shape}")
    if pcm.dtype != np.int16 and pcm.dtype not in (np.float32, np.float64):
        raise TypeError(f"resample takes int16, float32 or float64 samples, got {pcm.dtype}")
    if src_rate == dst_rate:
        return pcm.copy()
    g = gcd(src_rate, dst_rate)
    out = resample_poly(pcm.astype(np.float64), dst_rate // g, src_rate // g)
    if pcm.dtype == np.int16:
        return np.clip(np.rint(out), -32768, 32767).astype(np.int16)
    return out.astype(pcm.dtype, copy=False)
