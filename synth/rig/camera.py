"""What a real RGB-D camera adds to the rendered scene: lighting drift, flicker and sensor noise.

* Lighting: a slow drift of the overall gain and of each colour channel (white balance), plus
  flicker (mains light as the camera's frame rate aliases it), applied to whole RGB frames.
* Noise: Gaussian sensor noise on RGB, and depth noise whose standard deviation grows with the
  square of the distance, as for structured-light and stereo depth cameras.

Both are deterministic functions of the frame's time and index: the gain is a smooth function
of time, and frame ``k``'s noise is a window of a fixed noise bank at an offset drawn from
``(seed, k)``, so frames never depend on chunking. The noise bank keeps the per-frame cost at a
crop and an add (a fresh Gaussian draw per VGA frame would cost more than the rendering).
"""

from __future__ import annotations

import cv2
import numpy as np

from synth.rig.config import CameraNoiseConfig, LightingConfig
from synth.rig.idle import _SmoothSignal

#: Margin of the noise bank around the frame: the range of per-frame offsets, pixels.
_BANK_MARGIN = 32
#: Components of the smooth lighting drift (as the idle motion's).
_DRIFT_COMPONENTS = 8


class CameraEffects:
    """Lighting and sensor noise of one simulated camera.

    Parameters
    ----------
    width, height : int
        Frame size in pixels.
    seed : int
        The rig's seed.
    lighting : LightingConfig | None
        Lighting drift and flicker, or None for constant light.
    noise : CameraNoiseConfig | None
        Sensor noise, or None for a noiseless camera.
    """

    def __init__(self, width: int, height: int, seed: int, *, lighting: LightingConfig | None = None,
                 noise: CameraNoiseConfig | None = None) -> None:
        self.lighting, self.noise, self.seed = lighting, noise, int(seed)
        rng = np.random.default_rng([self.seed, 0xCA3E])
        self._drift = _SmoothSignal(rng, 4, _DRIFT_COMPONENTS, lighting.time_scale_s) if lighting else None
        self._flicker_phase = float(rng.uniform(0.0, 2 * np.pi))
        if noise is not None:
            shape = (height + _BANK_MARGIN, width + _BANK_MARGIN)
            self._rgb_bank = np.rint(rng.standard_normal(shape + (3,), dtype=np.float32)
                                     * np.float32(noise.rgb_sigma)).astype(np.int16)
            self._depth_bank = rng.standard_normal(shape, dtype=np.float32)
        self._shape = (height, width)

    def gains(self, times_s: np.ndarray) -> np.ndarray:
        """RGB gain of each channel at ``times_s`` (n,), shape (n, 3); ones without lighting effects."""
        t = np.asarray(times_s, dtype=np.float64).reshape(-1)
        if self.lighting is None:
            return np.ones((t.size, 3))
        c = self.lighting
        drift = self._drift(t)
        overall = 1.0 + c.gain_rms * drift[:, :1] + c.flicker_depth * np.sin(
            2 * np.pi * c.flicker_hz * t[:, None] + self._flicker_phase)
        return np.clip(overall * (1.0 + c.colour_rms * drift[:, 1:]), 0.3, 2.0)

    def apply(self, rgb: np.ndarray, depth: np.ndarray, time_s: float, frame_index: int
              ) -> tuple[np.ndarray, np.ndarray]:
        """Frame ``frame_index`` (at ``time_s``) as the camera records it; returns new arrays."""
        if self.lighting is not None:
            g = self.gains(np.array([time_s]))[0]
            # A per-channel lookup table gives exactly cv2.multiply's rounded, saturated products at a
            # quarter of its cost.
            lut = np.clip(np.rint(np.arange(256.0)[:, None] * g[None, :]), 0, 255).astype(np.uint8)
            rgb = cv2.LUT(rgb, lut[None, :, :])
        if self.noise is not None:
            h, w = self._shape
            oy, ox = np.random.default_rng([self.seed, 0xCA3E, int(frame_index)]).integers(0, _BANK_MARGIN + 1, 2)
            rgb = cv2.add(rgb, self._rgb_bank[oy:oy + h, ox:ox + w], dtype=cv2.CV_8U)
            d = depth.astype(np.float32)
            sigma = np.float32(self.noise.depth_sigma_mm_at_1m * 1e-6) * d * d
            d += sigma * self._depth_bank[oy:oy + h, ox:ox + w]
            depth = np.clip(np.rint(d), 1, 65535).astype(np.uint16)
        return rgb, depth
