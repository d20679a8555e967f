"""In-band DTMF detection (ITU-T Q.23 frequencies, Q.24 tolerances), sans I/O.

For calls that offered no telephone-event, digits arrive as tones in the
audio. Analysis runs on 20 ms windows every 10 ms, all windows of a chunk in
one numpy FFT (Hann window, zero-padded to 4 Hz bins, parabolic peak
interpolation), which measures each group's frequency to about a hertz. Where
the classic Goertzel filter bank only says "there is energy near 697 Hz",
measuring the frequency lets the Q.24 limits be applied as written:

* frequency: accepted within ±(1.5 % + 2 Hz), refused beyond ±3.5 %
  (the line is drawn at ±2.5 %);
* twist: the high tone may be up to 8 dB weaker (normal twist) or 4 dB
  stronger (reverse twist) than the low tone;
* level: each tone at least -40 dBm0;
* purity (talk-off): the two tones hold at least 90 % of the window's energy
  and the window's halves carry equal energy within 2 dB (a steady tone, not
  a transient);
* timing: a digit needs two consecutive good windows (a tone of 40 ms always
  has them, one under 23 ms never does); the same digit again needs at least
  three windows (about 40 ms) without it.
"""

from __future__ import annotations

import numpy as np

LOW = np.array([697.0, 770.0, 852.0, 941.0])
HIGH = np.array([1209.0, 1336.0, 1477.0, 1633.0])
KEYS = ["123A", "456B", "789C", "*0#D"]

WINDOW = 160  # 20 ms at 8 kHz
HOP = 80  # 10 ms
NFFT = 2048
TOLERANCE = 0.025
NORMAL_TWIST_DB = 8.0
REVERSE_TWIST_DB = 4.0
PURITY = 0.90
HALVES_DB = 2.0
MIN_HITS = 2
MIN_GAP = 3
# 0 dBm0 is a sine of RMS 3.14 dB below a full-scale square wave (G.711):
# amplitude 32768 * 10**(-3.14/20) ~= 22,775.
DBM0_AMPLITUDE = 22775.0
MIN_LEVEL_DBM0 = -40.0


class InbandDtmfDetector:
    """Feed 8 kHz int16 audio in any chunk size; get digits back once each."""

    def __init__(self, rate: int = 8000) -> None:
        if rate != 8000:
            raise ValueError(f"in-band DTMF detection runs at 8000 Hz, got {rate} (resample first)")
        self._buffer = np.zeros(0, dtype=np.float64)
        self._window = np.hanning(WINDOW)
        self._freqs = np.fft.rfftfreq(NFFT, 1.0 / rate)
        self._low_band = (self._freqs >= 640) & (self._freqs <= 990)
        self._high_band = (self._freqs >= 1150) & (self._freqs <= 1700)
        self._low_idx = np.nonzero(self._low_band)[0]
        self._high_idx = np.nonzero(self._high_band)[0]
        # A pure sine of amplitude A gives a Hann-windowed peak of A * sum(w) / 2.
        self._amp_scale = 2.0 / self._window.sum()
        self._lobe = round(2 * rate / WINDOW / (self._freqs[1] - self._freqs[0]))  # Hann lobe
        self._cum_for: np.ndarray | None = None
        self._cum = np.zeros((0, 0))
        self._min_amp = DBM0_AMPLITUDE * 10 ** (MIN_LEVEL_DBM0 / 20)
        self._candidate: str | None = None
        self._hits = 0
        self._current: str | None = None
        self._misses = 0

    def feed(self, pcm: np.ndarray) -> list[str]:
        """Analyse ``pcm`` (appended to what came before); returns new digits."""
        self._buffer = np.concatenate((self._buffer, pcm.astype(np.float64)))
        count = (len(self._buffer) - WINDOW) // HOP + 1
        if count <= 0:
            return []
        starts = np.arange(count) * HOP
        frames = self._buffer[starts[:, None] + np.arange(WINDOW)]
        self._buffer = self._buffer[count * HOP :]
        digits = self._classify(frames)
        out: list[str] = []
        for digit in digits:
            found = self._step(digit)
            if found is not None:
                out.append(found)
        return out

    def _classify(self, frames: np.ndarray) -> list[str | None]:
        spectrum = np.abs(np.fft.rfft(frames * self._window, NFFT, axis=1))
        power = spectrum**2
        total = power.sum(axis=1) + 1e-9
        results: list[str | None] = []
        low_f, low_a, low_e = self._peaks(spectrum, power, self._low_idx)
        high_f, high_a, high_e = self._peaks(spectrum, power, self._high_idx)
        half = WINDOW // 2
        e1 = (frames[:, :half] ** 2).sum(axis=1) + 1e-9
        e2 = (frames[:, half:] ** 2).sum(axis=1) + 1e-9
        steady = np.abs(10 * np.log10(e1 / e2)) <= HALVES_DB
        # Cheap vectorised screens first; the exact checks run only on survivors.
        candidates = steady & ((low_e + high_e) / total >= PURITY)
        candidates &= np.minimum(low_a, high_a) >= self._min_amp
        for i in range(frames.shape[0]):
            results.append(
                self._key(low_f[i], high_f[i], low_a[i], high_a[i]) if candidates[i] else None
            )
        return results

    def _peaks(
        self, spectrum: np.ndarray, power: np.ndarray, idx: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per frame: interpolated peak frequency, tone amplitude, energy near the peak."""
        band = spectrum[:, idx]
        k = idx[np.argmax(band, axis=1)]
        rows = np.arange(spectrum.shape[0])
        a = np.log(spectrum[rows, k - 1] + 1e-9)
        b = np.log(spectrum[rows, k] + 1e-9)
        c = np.log(spectrum[rows, k + 1] + 1e-9)
        denom = a - 2 * b + c
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            delta = np.where(np.abs(denom) > 1e-12, 0.5 * (a - c) / denom, 0.0)
            delta = np.clip(delta, -0.5, 0.5)
            amplitude = np.exp(b - 0.25 * (a - c) * delta) * self._amp_scale
        freq = (k + delta) * (self._freqs[1] - self._freqs[0])
        cumulative = self._cumulative(power)
        lo = np.clip(k - self._lobe, 0, power.shape[1] - 1)
        hi = np.clip(k + self._lobe + 1, 0, power.shape[1])
        near = cumulative[rows, hi] - cumulative[rows, lo]
        return freq, amplitude, near

    def _cumulative(self, power: np.ndarray) -> np.ndarray:
        if self._cum_for is not power:
            zeros = np.zeros((power.shape[0], 1))
            self._cum = np.concatenate((zeros, np.cumsum(power, axis=1)), axis=1)
            self._cum_for = power
        return self._cum

    def _key(self, fl: float, fh: float, al: float, ah: float) -> str | None:
        li = int(np.argmin(np.abs(LOW - fl)))
        hi = int(np.argmin(np.abs(HIGH - fh)))
        if abs(fl - LOW[li]) > LOW[li] * TOLERANCE or abs(fh - HIGH[hi]) > HIGH[hi] * TOLERANCE:
            return None
        twist = 20 * np.log10(al / ah)  # > 0: high tone weaker (normal twist)
        if twist > NORMAL_TWIST_DB or -twist > REVERSE_TWIST_DB:
            return None
        return KEYS[li][hi]

    def _step(self, digit: str | None) -> str | None:
        if digit is not None and digit == self._candidate:
            self._hits += 1
        else:
            self._candidate = digit
            self._hits = 1 if digit is not None else 0
        if digit is None or digit != self._current:
            self._misses += 1
            if self._misses >= MIN_GAP:
                self._current = None
        if digit is not None and self._hits >= MIN_HITS and self._current is None:
            self._current = digit
            self._misses = 0
            return digit
        if digit is not None and digit == self._current:
            self._misses = 0
        return None
