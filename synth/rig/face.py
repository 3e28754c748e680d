"""Procedural, deterministic renderer of a synthetic face driven by FACS Action Units.

The simulated sensor rig needs a camera whose ground truth is known exactly: which
AUs are active, how strongly, and where the head is. This module draws a synthetic
(no real person) head from 17 AU intensities and a head pose, and returns an RGB
frame together with a depth frame computed from the same geometry, so colour and
depth streams of a simulated RGB-D camera agree pixel for pixel.

How it works, and why it is fast enough for a real-time rig:

* At construction everything that does not depend on the AUs is computed once: an
  analytic height field of the head (an egg-shaped superellipsoid with nose, eye
  sockets, cheekbones, muzzle and chin), ears and a hair cap, Lambertian shading
  from that geometry, skin/hair textures, the background, and per-AU "soft tissue"
  deltas (wrinkles, cheek and chin bulges) rendered through the same shading.
* Each frame copies the precomputed images, adds the active soft-tissue deltas on
  small regions, stretches the lower face for a jaw drop, and draws the moving
  parts (brows, eyelids and eyes, nostrils, folds, lips, mouth interior) with
  anti-aliased OpenCV primitives.
* A non-zero head pose re-projects the canonical frontal rendering through a
  ray-marched remap of the head region only, which rotates both images
  consistently (depth values included).

Coordinates used throughout: canonical millimetres on the face, x to the image
right, y down, origin between the eyes on the eye line; depth grows away from the
camera. The projection is orthographic (weak perspective), which is accurate
enough at the 0.4-1.5 m distances of a desk rig.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np

from acquisition.annotate.action_units import AU_IDS

__all__ = ["RENDERED_AUS", "FaceRenderer"]

#: The AUs the renderer understands, in the order of every AU array (the FACS catalogue's).
RENDERED_AUS: tuple[int, ...] = AU_IDS

_N_AUS = len(RENDERED_AUS)
_AU_MAX = 5.0
_AU_TOL = 1e-6
_MIN_SIZE = 64
_MAX_SIZE = 4096
_MAX_ANGLE_DEG = 45.0
_MAX_TRANSLATION_MM = 200.0
_MIN_FACE_DISTANCE_MM = 150.0
_MIN_DEPTH_GAP_MM = 250.0
_MAX_DEPTH_MM = 60000.0

# Framing: the head (hair included) spans about half the frame height.
_HEAD_SPAN_MM = 230.0
_HEAD_MID_Y_MM = -9.0
_FRAME_FILL_H = 0.5
_FRAME_FILL_W = 0.58
_HEAD_SPAN_W_MM = 180.0

# Relief of the face front relative to its silhouette (before the nose is added).
_FACE_DEPTH_MM = 70.0
_FACE_EXPONENT = 2.4
_JAW_DROP_MM = 17.0
_AO_SIGMA_MM = 4.0
_SS_MAX = 4
# Side/back shell of the head used when a posed ray misses the frontal surface.
_BACK_DEPTH_MM = 95.0
# Coarse ray march of a posed head: step and end (canonical mm behind the silhouette plane).
_MARCH_STEP_MM = 8.0
_MARCH_END_MM = 14.0

# cv2 sub-pixel drawing: coordinates are passed multiplied by 2**_FP_SHIFT.
_FP_SHIFT = 4
_FP_SCALE = float(1 << _FP_SHIFT)
_AA = cv2.LINE_AA


def _unit(v: tuple[float, float, float]) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    return a / np.linalg.norm(a)


# Key light from the upper left, in front of the face (x right, y down, z away).
_LIGHT = _unit((-0.42, -0.55, -0.72))
_HALF = _unit(tuple(_LIGHT + np.array([0.0, 0.0, -1.0])))

_SKIN_PALETTE = np.array(
    [(243, 208, 186), (226, 182, 152), (200, 150, 112), (162, 112, 80), (112, 74, 52)], dtype=np.float64
)
_HAIR_PALETTE = np.array(
    [(26, 22, 20), (58, 40, 28), (100, 68, 42), (138, 72, 38), (168, 132, 84), (212, 182, 124), (150, 148, 146)],
    dtype=np.float64,
)
_IRIS_PALETTE = np.array(
    [(66, 42, 24), (104, 66, 36), (118, 98, 52), (78, 108, 66), (70, 108, 150), (106, 118, 128)], dtype=np.float64
)
_BG_TOP = np.array((172.0, 184.0, 196.0))
_BG_BOTTOM = np.array((118.0, 130.0, 146.0))
_BG_VIGNETTE = np.array((26.0, 26.0, 24.0))


@dataclass(frozen=True)
class _Identity:
    """Per-subject proportions and colours, all lengths in canonical mm."""

    face_hw: float
    skull_top: float
    chin: float
    jaw_taper: float
    cheek_prom: float
    eye_dx: float
    eye_hw: float
    lid_up: float
    lid_low: float
    crease_gap: float
    iris_r: float
    iris_rgb: np.ndarray
    skin_rgb: np.ndarray
    lip_rgb: np.ndarray
    hair_rgb: np.ndarray
    brow_rgb: np.ndarray
    blush: float
    hair_volume: float
    hair_top: float
    hairline_y: float
    hair_part: float
    hair_side_cut: float
    brow_thick: float
    brow_arch: float
    brow_y: float
    nose_prom: float
    nose_width: float
    nostril_y: float
    mouth_y: float
    mouth_hw: float
    upper_lip: float
    lower_lip: float
    stubble: float


def _sample_identity(rng: np.random.Generator) -> _Identity:
    # The draw order is part of the identity definition: append, never reorder.
    u = rng.uniform
    skin_t = u(0.0, 1.0) * (len(_SKIN_PALETTE) - 1)
    i0 = int(min(skin_t, len(_SKIN_PALETTE) - 2))
    skin = _SKIN_PALETTE[i0] + (skin_t - i0) * (_SKIN_PALETTE[i0 + 1] - _SKIN_PALETTE[i0])
    hair = _HAIR_PALETTE[int(rng.integers(len(_HAIR_PALETTE)))] * u(0.9, 1.1, size=3).mean()
    iris = _IRIS_PALETTE[int(rng.integers(len(_IRIS_PALETTE)))] * u(0.85, 1.15)
    face_hw = u(66.0, 75.0)
    skull_top = u(110.0, 117.0)
    chin = u(98.0, 106.0)
    jaw_taper = u(0.14, 0.30)
    cheek_prom = u(0.7, 1.3)
    eye_dx = u(30.0, 34.0)
    eye_hw = u(13.5, 15.5)
    lid_up = u(5.4, 6.4)
    lid_low = u(4.2, 5.0)
    crease_gap = u(2.5, 4.5)
    iris_r = u(5.5, 6.0)
    blush = u(0.2, 0.6)
    hair_volume = u(5.0, 14.0)
    hair_top = u(4.0, 12.0)
    hairline_y = u(-72.0, -56.0)
    hair_part = u(-20.0, 20.0)
    hair_side_cut = u(-2.0, 14.0)
    brow_thick = u(3.6, 6.4)
    brow_arch = u(3.0, 6.0)
    brow_y = u(-21.0, -18.0)
    nose_prom = u(21.0, 27.0)
    nose_width = u(0.85, 1.15)
    nostril_y = u(40.0, 43.0)
    mouth_y = u(62.0, 67.0)
    mouth_hw = u(22.5, 27.0)
    upper_lip = u(5.0, 7.5)
    lower_lip = u(7.0, 10.0)
    stubble = float(u(0.0, 1.0) < 0.3) * u(0.3, 0.7)
    lip = np.clip(skin * np.array([0.86, 0.56, 0.58]) + np.array([18.0, 2.0, 8.0]), 0, 255)
    brow = (hair * 0.55 + np.array([22.0, 14.0, 10.0])) if hair.mean() > 110 else hair * 0.9
    return _Identity(
        face_hw=face_hw, skull_top=skull_top, chin=chin, jaw_taper=jaw_taper, cheek_prom=cheek_prom,
        eye_dx=eye_dx, eye_hw=eye_hw, lid_up=lid_up, lid_low=lid_low, crease_gap=crease_gap, iris_r=iris_r,
        iris_rgb=iris, skin_rgb=skin, lip_rgb=lip, hair_rgb=hair, brow_rgb=brow, blush=blush,
        hair_volume=hair_volume, hair_top=hair_top, hairline_y=hairline_y, hair_part=hair_part,
        hair_side_cut=hair_side_cut, brow_thick=brow_thick, brow_arch=brow_arch, brow_y=brow_y,
        nose_prom=nose_prom, nose_width=nose_width, nostril_y=nostril_y, mouth_y=mouth_y, mouth_hw=mouth_hw,
        upper_lip=upper_lip, lower_lip=lower_lip, stubble=stubble,
    )


#: Skin tones of the wide identity family: the default palette extended to paler and darker skin.
_WIDE_SKIN_PALETTE = np.array(
    [(252, 226, 210), (243, 208, 186), (226, 182, 152), (200, 150, 112), (162, 112, 80), (112, 74, 52),
     (72, 46, 34)], dtype=np.float64
)
#: Hair colours of the wide family: the default ones plus white, auburn and dyed.
_WIDE_HAIR_PALETTE = np.concatenate([_HAIR_PALETTE, np.array([(222, 220, 216), (120, 40, 30), (60, 40, 90)])])
_GLASSES_PALETTE = np.array([(18, 18, 20), (84, 56, 36), (150, 150, 156), (118, 28, 30), (40, 60, 110)],
                            dtype=np.float64)
#: Fractions of wide-family subjects with glasses and with (almost) no hair.
_GLASSES_FRACTION = 0.35
_BALD_FRACTION = 0.12


@dataclass(frozen=True)
class _Glasses:
    """Spectacles of a wide-family identity, lengths in canonical mm."""

    rgb: np.ndarray
    lens_hw: float
    lens_hh: float
    lens_y: float
    squareness: float  # superellipse exponent of the rims: 2 round, 5 nearly rectangular
    frame_mm: float
    tint: float


def _mix_palette(palette: np.ndarray, t: float) -> np.ndarray:
    """Linear interpolation along a palette, ``t`` in [0, 1]."""
    pos = t * (len(palette) - 1)
    i0 = int(min(pos, len(palette) - 2))
    return palette[i0] + (pos - i0) * (palette[i0 + 1] - palette[i0])


def _widen_identity(idn: _Identity, rng: np.random.Generator) -> tuple[_Identity, _Glasses | None]:
    """A wide-family identity: the default one with skin, shape and hair redrawn from wider ranges.

    Drawn from its own generator after the default identity and textures, so the default family
    is unchanged. The draw order is part of the identity definition: append, never reorder.
    """
    u = rng.uniform
    skin = _mix_palette(_WIDE_SKIN_PALETTE, u(0.0, 1.0))
    hair = _WIDE_HAIR_PALETTE[int(rng.integers(len(_WIDE_HAIR_PALETTE)))] * u(0.9, 1.1)
    bald = u(0.0, 1.0) < _BALD_FRACTION
    long_hair = u(0.0, 1.0) < 0.3
    changes = dict(
        skin_rgb=skin, hair_rgb=hair,
        lip_rgb=np.clip(skin * np.array([0.86, 0.56, 0.58]) + np.array([18.0, 2.0, 8.0]), 0, 255),
        brow_rgb=(hair * 0.55 + np.array([22.0, 14.0, 10.0])) if hair.mean() > 110 else hair * 0.9,
        face_hw=u(61.0, 80.0), skull_top=u(105.0, 120.0), chin=u(95.0, 110.0), jaw_taper=u(0.08, 0.36),
        cheek_prom=u(0.5, 1.5), eye_dx=u(29.0, 35.0), eye_hw=u(13.0, 16.0), nose_prom=u(19.0, 29.0),
        nose_width=u(0.8, 1.3), mouth_hw=u(21.0, 28.0), upper_lip=u(4.5, 8.5), lower_lip=u(6.5, 11.0),
        brow_thick=u(3.0, 7.0), blush=u(0.1, 0.7),
        hair_volume=1.0 if bald else u(4.0, 20.0), hair_top=1.0 if bald else u(3.0, 16.0),
        hairline_y=u(-100.0, -92.0) if bald else u(-74.0, -52.0),
        hair_side_cut=u(24.0, 40.0) if long_hair and not bald else u(-2.0, 14.0),
    )
    glasses = None
    if u(0.0, 1.0) < _GLASSES_FRACTION:
        eye_hw = changes["eye_hw"]
        colour = _GLASSES_PALETTE[int(rng.integers(len(_GLASSES_PALETTE)))]
        glasses = _Glasses(rgb=colour, lens_hw=eye_hw * u(1.2, 1.45),
                           lens_hh=eye_hw * u(0.75, 1.0), lens_y=u(-1.5, 1.0), squareness=u(2.0, 5.0),
                           frame_mm=u(1.0, 2.6), tint=u(0.0, 0.12))
    return replace(idn, **changes), glasses

def _g2(x: np.ndarray, y: np.ndarray, x0: float, y0: float, sx: float, sy: float) -> np.ndarray:
    """Unnormalised 2-D Gaussian bump, peak 1."""
    return np.exp(-0.5 * (((x - x0) / sx) ** 2 + ((y - y0) / sy) ** 2))


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _edge_alpha(f: np.ndarray, extra_px: np.ndarray | float = 0.0) -> np.ndarray:
    """Anti-aliased coverage of the region ``f < 0`` from a first-order signed distance."""
    gy, gx = np.gradient(f)
    dist = f / np.sqrt(gx * gx + gy * gy + 1e-12) + extra_px
    return np.clip(0.5 - dist, 0.0, 1.0).astype(np.float32)


def _blend_mask(dst: np.ndarray, src: np.ndarray, mask: np.ndarray) -> None:
    """In place ``dst = dst + (src - dst) * mask / 255`` for uint8 images (mask is 0-255 coverage)."""
    w = mask.astype(np.float32) * np.float32(1.0 / 255.0)
    dst[...] = cv2.blendLinear(src, dst, w, 1.0 - w)


def _push_pull(img: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Fill pixels of zero ``weight`` from their surroundings (pyramid push-pull), keep the others."""
    levels = [(img * weight[..., None], weight)]
    while min(levels[-1][1].shape) > 2:
        c, w = levels[-1]
        levels.append((cv2.pyrDown(c), cv2.pyrDown(w)))
    c, w = levels[-1]
    filled = c / np.maximum(w, 1e-6)[..., None]
    for c, w in reversed(levels[:-1]):
        up = cv2.resize(filled, (w.shape[1], w.shape[0]), interpolation=cv2.INTER_LINEAR)
        known = c / np.maximum(w, 1e-6)[..., None]
        t = np.clip(w * 4.0, 0.0, 1.0)[..., None]
        filled = known * t + up * (1.0 - t)
    return np.where(weight[..., None] > 0, img, filled)


def _bezier(p0: tuple[float, float], p1: tuple[float, float], p2: tuple[float, float], n: int) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)[:, None]
    a, b, c = (np.asarray(p, dtype=np.float64) for p in (p0, p1, p2))
    return (1 - t) ** 2 * a + 2 * (1 - t) * t * b + t * t * c


class FaceRenderer:
    """Render a synthetic face from AU intensities as RGB + depth.

    The face is a procedural cartoon-realistic head (skin shading from its own
    depth geometry, hair, ears, eyes, brows, nose, lips) whose appearance follows
    the 17 FACS Action Units listed in :data:`RENDERED_AUS`. All work that does not
    depend on the AUs happens here, in the constructor; :meth:`render` only
    composes the moving parts, so a 640x480 frame costs a few milliseconds.

    Parameters
    ----------
    width, height : int
        Frame size in pixels, each in [64, 4096]. Features scale with the frame;
        the head (hair included) spans about half the frame height, centred.
    identity_seed : int, optional
        Non-negative seed of the synthetic identity (face proportions, eye
        spacing, skin tone, hair colour and style, brow thickness, iris colour).
        Equal seeds give byte-identical renderings; no global RNG is used.
    face_distance_mm : float, optional
        Camera distance of the nose tip, the closest point of a frontal face, in
        millimetres (>= 150).
    background_distance_mm : float, optional
        Distance of the flat background wall in millimetres; at least
        ``face_distance_mm + 250`` so the head never reaches it, and <= 60000.
    family : ``"default"`` | ``"wide"``, optional
        Identity family that ``identity_seed`` indexes. ``"wide"`` redraws skin tone (paler and
        darker), face shape, features and hair (including bald and long) from wider ranges and gives
        about a third of the identities glasses; ``"default"`` identities never change.

    Attributes
    ----------
    width, height, identity_seed, face_distance_mm, background_distance_mm, family
        The constructor arguments.
    pixels_per_mm : float
        Image scale of the face (orthographic projection), pixels per millimetre.

    Raises
    ------
    ValueError
        If a size, seed or distance is out of range.

    Notes
    -----
    Depth is in millimetres as ``uint16``; every pixel holds a valid reading
    (the head or the background wall), none is 0. Head pixels are exactly those
    closer than the wall; there is no neck or torso. Construction costs about a
    second at 640x480 and grows with the pixel count.

    What each AU does (intensity k in [0, 5] scales every effect from neutral):
    AU1 lifts the inner brows and adds central forehead lines; AU2 lifts the outer
    brows with lateral forehead lines; AU4 lowers and knits the brows with
    vertical glabellar furrows; AU5 raises the upper lids (sclera above the
    iris); AU6 lifts and bulges the cheeks, pushes the lower lids up and adds
    crow's feet; AU7 narrows the lids; AU9 wrinkles the nose bridge and lifts the
    nostrils; AU10 raises the upper lip and deepens the nasolabial folds; AU12
    pulls the lip corners up and out; AU14 tightens the corners with dimples;
    AU15 pulls the corners down; AU17 raises the chin boss (dimpled) and pushes
    the lower lip up; AU20 stretches the mouth wider and flatter; AU23 thins and
    tightens the lips; AU25 parts the lips; AU26 drops the jaw (the chin moves
    down, the mouth opens onto teeth, tongue and a deeper interior); AU45 closes
    the eyelids, fully at 5.
    """

    def __init__(
        self,
        width: int,
        height: int,
        *,
        identity_seed: int = 0,
        face_distance_mm: float = 600.0,
        background_distance_mm: float = 1500.0,
        family: str = "default",
    ) -> None:
        face_d, bg_d = self._check_arguments(width, height, identity_seed, face_distance_mm, background_distance_mm)
        if family not in ("default", "wide"):
            raise ValueError(f"family must be 'default' or 'wide', got {family!r}")
        self.width = int(width)
        self.height = int(height)
        self.identity_seed = int(identity_seed)
        self.face_distance_mm = face_d
        self.background_distance_mm = bg_d
        self.family = family

        rng = np.random.default_rng(self.identity_seed)
        self._id = _sample_identity(rng)
        self._make_textures(rng)
        self._glasses: _Glasses | None = None
        if family == "wide":
            self._id, self._glasses = _widen_identity(self._id, np.random.default_rng([self.identity_seed, 0x51DE]))
        self._place_head()
        self._render_base()
        self._prepare_jaw_band()

    @staticmethod
    def _check_arguments(width: int, height: int, identity_seed: int, face_distance_mm: float,
                         background_distance_mm: float) -> tuple[float, float]:
        """Check the constructor's arguments; returns the two distances as floats (mm)."""
        for name, value in (("width", width), ("height", height)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"{name} must be an integer in [{_MIN_SIZE}, {_MAX_SIZE}], got {value!r}")
            if not _MIN_SIZE <= int(value) <= _MAX_SIZE:
                raise ValueError(f"{name} must be in [{_MIN_SIZE}, {_MAX_SIZE}] pixels, got {value}")
        if isinstance(identity_seed, bool) or not isinstance(identity_seed, (int, np.integer)) or identity_seed < 0:
            raise ValueError(f"identity_seed must be a non-negative integer, got {identity_seed!r}")
        face_d = float(face_distance_mm)
        bg_d = float(background_distance_mm)
        if not math.isfinite(face_d) or face_d < _MIN_FACE_DISTANCE_MM:
            raise ValueError(f"face_distance_mm must be a finite value >= {_MIN_FACE_DISTANCE_MM}, got {face_d}")
        if not math.isfinite(bg_d) or bg_d < face_d + _MIN_DEPTH_GAP_MM or bg_d > _MAX_DEPTH_MM:
            raise ValueError(
                f"background_distance_mm must be in [face_distance_mm + {_MIN_DEPTH_GAP_MM:g}, {_MAX_DEPTH_MM:g}]"
                f" = [{face_d + _MIN_DEPTH_GAP_MM:g}, {_MAX_DEPTH_MM:g}], got {bg_d}"
            )
        return face_d, bg_d

    def _make_textures(self, rng: np.random.Generator) -> None:
        """Skin, hair-strand and chin noise textures, drawn from the identity's generator after its proportions."""
        # Textures live on fixed millimetre grids so an identity looks the same at every resolution.
        self._noise_fine = cv2.GaussianBlur(rng.standard_normal((260, 260)).astype(np.float32), (0, 0), 0.8) * 2.2
        self._noise_coarse = cv2.GaussianBlur(rng.standard_normal((260, 260)).astype(np.float32), (0, 0), 5.0) * 9.0
        strands = np.pad(rng.standard_normal((90, 900)).astype(np.float32), ((0, 0), (40, 40)), mode="wrap")
        strands = cv2.GaussianBlur(strands, (0, 0), sigmaX=0.7, sigmaY=7.0)[:, 40:-40]
        self._strands = np.clip(0.5 + strands * 2.2, 0.0, 1.0)
        self._chin_noise = cv2.GaussianBlur(rng.standard_normal((120, 120)).astype(np.float32), (0, 0), 1.2) * 3.0

    def _place_head(self) -> None:
        """Image scale and centre, supersampling, the depth offset and the rotation pivot of the head."""
        w, h = self.width, self.height
        self.pixels_per_mm = min(_FRAME_FILL_H * h / _HEAD_SPAN_MM, _FRAME_FILL_W * w / _HEAD_SPAN_W_MM)
        self._ppm = self.pixels_per_mm
        self._cx = (w - 1) / 2.0
        self._cy = (h - 1) / 2.0 - _HEAD_MID_Y_MM * self._ppm
        self._ss = int(np.clip(math.ceil(2.0 / self._ppm), 1, _SS_MAX))

        # Depth offset so that the nose tip, the closest point, sits at face_distance_mm.
        xs, ys = np.meshgrid(np.linspace(-12, 12, 97), np.linspace(20, 45, 101))
        z_front = self._skin_relief(xs.astype(np.float32), ys.astype(np.float32))
        self._z_offset = self.face_distance_mm - float(z_front.min())
        self._z_rim = self._z_offset
        # Pivot of head rotation: behind the head centre, towards the neck.
        self._pivot = np.array([0.0, 30.0, self._z_rim + 10.0])
        self._head_centre_y = 0.5 * (self._id.chin - self._id.skull_top)

    def _render_base(self) -> None:
        """The neutral frontal head over the background, its rim colour, skull coverage and blend shapes."""
        w, h = self.width, self.height
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        self._bg_rgb = self._background(xx, yy).astype(np.uint8)
        self._bg_depth = np.full((h, w), int(round(self.background_distance_mm)), dtype=np.uint16)

        idn = self._id
        x_ext = idn.face_hw + max(idn.hair_volume, 14.0) + 6.0
        self._head_box = self._box_px(-x_ext, x_ext, -(idn.skull_top + idn.hair_top + 4.0),
                                      idn.chin + _JAW_DROP_MM + 8.0)
        x0, y0, x1, y1 = self._head_box
        rgb_f, depth_f, alpha_f, shade_f, skull_f = self._render_region(x0, y0, x1, y1, None)
        self._base_rgb = self._bg_rgb.copy()
        self._base_rgb[y0:y1, x0:x1] = np.clip(np.rint(rgb_f), 0, 255).astype(np.uint8)
        self._base_depth = self._bg_depth.copy()
        self._base_depth[y0:y1, x0:x1] = np.rint(depth_f).astype(np.uint16)
        self._base_alpha = np.clip(np.rint(alpha_f * 255.0), 0, 255).astype(np.uint8)
        self._shade = shade_f
        # Head colour continued past the silhouette: a posed head samples its rim from here so the
        # background mixed into anti-aliased edge pixels is not dragged inside the rotated outline.
        solid = (alpha_f >= 0.99).astype(np.uint8)
        band_px = max(2, int(round(2.0 * self._ppm)))
        band = solid - cv2.erode(solid, np.ones((2 * band_px + 1, 2 * band_px + 1), np.uint8))
        # Continue only the outermost band of the head, so the hidden side takes the rim's own shading.
        ext = _push_pull(rgb_f, band.astype(np.float32))
        ext = np.where(solid[..., None] > 0, rgb_f, ext)
        self._rim_rgb = np.clip(np.rint(ext), 0, 255).astype(np.uint8)
        self._skull_alpha = np.clip(np.rint(skull_f * 255.0), 0, 255).astype(np.uint8)
        self._shell_radius = self._build_shell_radius()
        self._base_rgb_f = rgb_f  # kept for blend-shape differencing
        self._base_z = depth_f

        self._blendshapes = self._build_blendshapes()
        del self._base_rgb_f, self._base_z

    def _prepare_jaw_band(self) -> None:
        """The rows the jaw drop stretches, their remap grid, and the sample points of mouth, eyes and brows."""
        idn, h = self._id, self.height
        x0, _, x1, _ = self._head_box
        # Jaw-drop stretch band: rows from just above the mouth to below the lowered chin.
        self._jaw_rows = (
            self._cy + (idn.mouth_y - 5.0) * self._ppm,
            self._cy + (idn.mouth_y + 3.0) * self._ppm,
            self._cy + (idn.chin + 1.0) * self._ppm,
            self._cy + (idn.chin + _JAW_DROP_MM + 7.0) * self._ppm,
        )
        jr0 = int(math.floor(self._jaw_rows[0]))
        jr1 = min(h, int(math.ceil(self._jaw_rows[3])) + 1)
        self._jaw_span = (max(0, jr0), jr1)
        self._jaw_mapx = np.tile(np.arange(x0, x1, dtype=np.float32) - x0, (jr1 - max(0, jr0), 1))

        self._mouth_t = np.linspace(-1.0, 1.0, 29)
        self._eye_t = np.linspace(0.0, 1.0, 19)
        self._brow_t = np.linspace(0.0, 1.0, 13)
        self._mouth_depth = float(self._base_depth[self._iy(idn.mouth_y), self._ix(0.0)])

    # ------------------------------------------------------------------ public API

    def render(
        self,
        au_intensity: np.ndarray,
        *,
        yaw_deg: float = 0.0,
        pitch_deg: float = 0.0,
        roll_deg: float = 0.0,
        translation_mm: Sequence[float] = (0.0, 0.0, 0.0),
    ) -> tuple[np.ndarray, np.ndarray]:
        """Render one frame.

        Parameters
        ----------
        au_intensity : numpy.ndarray
            Float array of shape (17,): intensities on the FACS 0-5 scale
            (0 = absent, 5 = maximum) in the order AU 1, 2, 4, 5, 6, 7, 9, 10, 12,
            14, 15, 17, 20, 23, 25, 26, 45 (:data:`RENDERED_AUS`).
        yaw_deg : float, optional
            Head yaw in degrees; positive turns the face towards the image right.
        pitch_deg : float, optional
            Head pitch in degrees; positive tilts the face up (chin up).
        roll_deg : float, optional
            Head roll in degrees; positive rotates the head clockwise in the image.
            Angles up to 30 degrees look plausible; |angle| > 45 is rejected.
        translation_mm : sequence of 3 float, optional
            Head translation ``(x, y, z)`` in millimetres after the rotation: x to the image right,
            y down, z away from the camera (the head shrinks and its depth grows by z). Each
            within +-200 mm.

        Returns
        -------
        rgb : numpy.ndarray
            ``(height, width, 3)`` uint8 image, RGB channel order.
        depth : numpy.ndarray
            ``(height, width)`` uint16 depth in millimetres along the optical axis;
            head pixels are exactly those closer than the background wall.

        Raises
        ------
        ValueError
            If ``au_intensity`` has the wrong shape, contains NaN/inf or values
            outside [0, 5], an angle is non-finite or beyond 45 degrees, or a translation is
            not three finite values within +-200 mm.
        """
        k = self._validate_aus(au_intensity) / _AU_MAX
        pose = self._validate_pose(yaw_deg, pitch_deg, roll_deg)
        shift = self._validate_translation(translation_mm)
        a = dict(zip(RENDERED_AUS, k.tolist()))
        rgb = self._base_rgb.copy()
        depth = self._base_depth.copy()

        for au, (bx0, by0, bx1, by1), d_rgb, d_z in self._blendshapes:
            s = a[au]
            if s <= 0.0:
                continue
            roi = rgb[by0:by1, bx0:bx1]
            roi[...] = np.clip(roi + s * d_rgb, 0.0, 255.0).astype(np.uint8)
            droi = depth[by0:by1, bx0:bx1]
            droi[...] = np.rint(droi + s * d_z).astype(np.uint16)

        posed = any(v != 0.0 for v in pose)
        alpha, rim, skull = self._base_alpha, self._rim_rgb, self._skull_alpha
        jaw_mm = _JAW_DROP_MM * a[26]
        if jaw_mm * self._ppm >= 0.25:
            stretched = self._stretch_jaw(rgb, depth, (alpha, rim, skull) if posed else (), jaw_mm)
            if posed:
                alpha, rim, skull = stretched

        mouth = self._mouth_shape(a, jaw_mm)
        self._draw_brows(rgb, a)
        self._draw_eyes(rgb, a)
        self._draw_nose(rgb, a)
        self._draw_folds(rgb, a, mouth)
        self._draw_mouth(rgb, depth, a, mouth, jaw_mm)
        if self._glasses is not None:
            self._draw_glasses(rgb, depth)

        if posed:
            rgb, depth = self._apply_pose(rgb, depth, alpha, rim, skull, *pose)
        if any(v != 0.0 for v in shift):
            rgb, depth = self._apply_translation(rgb, depth, *shift)
        return rgb, depth

    @property
    def has_glasses(self) -> bool:
        """Whether this identity wears glasses (only in the ``wide`` family)."""
        return self._glasses is not None

    # ------------------------------------------------------------------ validation

    @staticmethod
    def _validate_aus(au_intensity: np.ndarray) -> np.ndarray:
        order = ", ".join(str(au) for au in RENDERED_AUS)
        try:
            arr = np.asarray(au_intensity, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"au_intensity must be a float array of shape ({_N_AUS},) (AU {order}): {exc}") from exc
        if arr.shape != (_N_AUS,):
            raise ValueError(
                f"au_intensity must have shape ({_N_AUS},) with intensities in the order AU {order}; "
                f"got shape {arr.shape}"
            )
        if not np.all(np.isfinite(arr)):
            bad = [RENDERED_AUS[i] for i in np.flatnonzero(~np.isfinite(arr))]
            raise ValueError(f"au_intensity contains NaN or infinite values (AU {bad})")
        if arr.min() < -_AU_TOL or arr.max() > _AU_MAX + _AU_TOL:
            out_of_range = np.flatnonzero((arr < -_AU_TOL) | (arr > _AU_MAX + _AU_TOL))
            bad = [(RENDERED_AUS[i], float(arr[i])) for i in out_of_range]
            raise ValueError(f"au_intensity values must lie in [0, 5] (FACS scale); out of range (AU, value): {bad}")
        return np.clip(arr, 0.0, _AU_MAX)

    @staticmethod
    def _validate_pose(yaw: float, pitch: float, roll: float) -> tuple[float, float, float]:
        out = []
        for name, value in (("yaw_deg", yaw), ("pitch_deg", pitch), ("roll_deg", roll)):
            v = float(value)
            if not math.isfinite(v) or abs(v) > _MAX_ANGLE_DEG:
                raise ValueError(f"{name} must be a finite angle within +-{_MAX_ANGLE_DEG:g} degrees, got {value!r}")
            out.append(v)
        return out[0], out[1], out[2]

    @staticmethod
    def _validate_translation(translation_mm: Sequence[float]) -> tuple[float, float, float]:
        try:
            arr = np.asarray(translation_mm, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"translation_mm must be three numbers (x, y, z) in mm: {exc}") from exc
        if arr.shape != (3,) or not np.all(np.isfinite(arr)) or np.abs(arr).max() > _MAX_TRANSLATION_MM:
            raise ValueError(f"translation_mm must be three finite values (x, y, z) within "
                             f"+-{_MAX_TRANSLATION_MM:g} mm, got {translation_mm!r}")
        return float(arr[0]), float(arr[1]), float(arr[2])

    # ------------------------------------------------------------------ coordinates

    def _ix(self, x_mm: float) -> int:
        return min(max(int(round(self._cx + x_mm * self._ppm)), 0), self.width - 1)

    def _iy(self, y_mm: float) -> int:
        return min(max(int(round(self._cy + y_mm * self._ppm)), 0), self.height - 1)

    def _box_px(self, x0: float, x1: float, y0: float, y1: float, pad: int = 1) -> tuple[int, int, int, int]:
        """Canonical mm box -> clipped integer pixel box ``(x0, y0, x1, y1)``, end-exclusive."""
        px0 = int(math.floor(self._cx + x0 * self._ppm)) - pad
        px1 = int(math.ceil(self._cx + x1 * self._ppm)) + pad + 1
        py0 = int(math.floor(self._cy + y0 * self._ppm)) - pad
        py1 = int(math.ceil(self._cy + y1 * self._ppm)) + pad + 1
        return max(0, px0), max(0, py0), min(self.width, px1), min(self.height, py1)

    def _fp(self, x: np.ndarray, y: np.ndarray, ox: int = 0, oy: int = 0) -> np.ndarray:
        """Canonical mm points -> int32 fixed-point pixel coordinates for cv2 (``shift=_FP_SHIFT``)."""
        x = np.asarray(x, dtype=np.float64)
        out = np.empty(x.shape + (2,), np.float64)
        np.multiply(x, self._ppm * _FP_SCALE, out=out[..., 0])
        np.multiply(y, self._ppm * _FP_SCALE, out=out[..., 1])
        out[..., 0] += (self._cx - ox) * _FP_SCALE
        out[..., 1] += (self._cy - oy) * _FP_SCALE
        return np.rint(out).astype(np.int32)

    def _fpt(self, x: float, y: float, ox: int = 0, oy: int = 0) -> tuple[int, int]:
        return (int(round((self._cx - ox + x * self._ppm) * _FP_SCALE)),
                int(round((self._cy - oy + y * self._ppm) * _FP_SCALE)))

    def _len_fp(self, mm: float) -> int:
        return max(1, int(round(mm * self._ppm * _FP_SCALE)))

    def _thick(self, mm: float) -> int:
        return max(1, int(round(mm * self._ppm)))

    def _sample_rgb(self, x: float, y: float) -> np.ndarray:
        return self._base_rgb[self._iy(y), self._ix(x)].astype(np.float64)

    def _shade_at(self, x: float, y: float) -> float:
        x0, y0, x1, y1 = self._head_box
        i = min(max(self._iy(y) - y0, 0), y1 - y0 - 1)
        j = min(max(self._ix(x) - x0, 0), x1 - x0 - 1)
        return float(self._shade[i, j])

    def _shade_lines(self, rgb: np.ndarray, lines: list[np.ndarray], thickness_mm: float, amount: float) -> None:
        """Darken (``amount`` > 0) or lighten (< 0) the skin under anti-aliased polylines.

        ``lines`` are (n, 2) arrays of canonical mm points. Scaling the underlying pixels, rather than
        painting a colour, keeps creases right on both the lit and the shadowed side of the face.
        """
        if abs(amount) < 1e-3 or not lines:
            return
        pts = np.concatenate(lines)
        pad = thickness_mm + 1.0
        bx0, by0, bx1, by1 = self._box_px(pts[:, 0].min() - pad, pts[:, 0].max() + pad, pts[:, 1].min() - pad,
                                          pts[:, 1].max() + pad)
        if bx1 <= bx0 or by1 <= by0:
            return
        mask = np.zeros((by1 - by0, bx1 - bx0), np.uint8)
        cv2.polylines(mask, [self._fp(ln[:, 0], ln[:, 1], bx0, by0) for ln in lines], False, 255,
                      self._thick(thickness_mm), _AA, _FP_SHIFT)
        roi = rgb[by0:by1, bx0:bx1]
        gain = 1.0 - np.float32(min(amount, 1.0) / 255.0) * mask.astype(np.float32)
        roi[...] = np.clip(roi * gain[..., None], 0, 255).astype(np.uint8)

    # ------------------------------------------------------------------ static geometry

    def _background(self, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
        """Soft vertical gradient with a vignette: a quadratic polynomial of pixel position."""
        w, h = self.width, self.height
        t = (yy / max(h - 1, 1))[..., None]
        r2 = (((xx - (w - 1) / 2.0) / w) ** 2 + ((yy - (h - 1) / 2.0) / h) ** 2)[..., None]
        return np.clip(_BG_TOP + (_BG_BOTTOM - _BG_TOP) * t - _BG_VIGNETTE * 2.0 * r2, 0, 255)

    def _egg(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Normalised radius of the skin silhouette (1 on the outline): broad skull, squarish tapering jaw."""
        idn = self._id
        b = np.where(y < 0, idn.skull_top, idn.chin)
        yn = np.abs(y / b)
        # The cranium is a little wider than the cheekbones; the jaw narrows towards a rounded chin.
        g = 1.0 + 0.05 * _smoothstep(-10.0, -60.0, y) + 0.03 * np.exp(-(((y - 10.0) / 25.0) ** 2))
        g = g * (1.0 - idn.jaw_taper * np.clip(y / idn.chin, 0.0, None) ** 2)
        g = np.where(g > 0, g, 1e-3)  # far below a strongly tapered chin: outside, never a NaN
        xn = np.abs(x) / (idn.face_hw * g)
        p = np.where(y < 0, 2.15, 3.0)
        return (xn**p + yn**p) ** (1.0 / p)

    def _skin_relief(self, x: np.ndarray, y: np.ndarray, r: np.ndarray | None = None) -> np.ndarray:
        """Skin depth relative to the silhouette plane (mm, negative = towards the camera)."""
        idn = self._id
        if r is None:
            r = self._egg(x, y)
        base = -_FACE_DEPTH_MM * np.clip(1.0 - np.clip(r, 0, 1) ** _FACE_EXPONENT, 0, 1) ** (1.0 / _FACE_EXPONENT)
        ax = np.abs(x)
        # Nose: a ridge growing from the root to the tip, a rounded tip and alar wings.
        prof = np.interp(y, [-14.0, -5.0, 8.0, 26.0, 34.0, 38.5, 43.0], [0.0, 3.5, 8.0, 18.0, 23.0, 19.0, 0.0])
        sig = np.interp(y, [-14.0, 8.0, 28.0, 38.0, 44.0], [7.0, 5.2, 6.5, 8.5, 9.0]) * idn.nose_width
        nose = prof * (idn.nose_prom / 24.0) * np.exp(-0.5 * (x / sig) ** 2)
        nose += 3.5 * _g2(x, y, 0.0, 33.0, 6.0 * idn.nose_width, 5.0)
        nose += 5.0 * _g2(ax, y, 13.0 * idn.nose_width, 38.5, 4.2, 4.0)
        z = base - nose
        # Eye sockets, eyeballs under the lids, brow ridge, temples.
        z += 7.0 * _g2(ax, y, idn.eye_dx, -1.0, 13.0, 9.0)
        z -= 4.5 * _g2(ax, y, idn.eye_dx, 0.0, 8.5, 5.5)
        z -= 3.5 * np.exp(-0.5 * ((y - (idn.brow_y + 1.0)) / 6.0) ** 2) * np.exp(-((x / 48.0) ** 4))
        z += 4.0 * _g2(ax, y, 60.0, -32.0, 9.0, 13.0)
        # Cheekbones, muzzle (the tooth arch pushes the mouth region forward), lips, chin.
        z -= 5.0 * idn.cheek_prom * _g2(ax, y, 40.0, 22.0, 13.0, 13.0)
        z -= 5.0 * _g2(x, y, 0.0, idn.mouth_y - 2.0, 30.0, 20.0)
        z -= 1.5 * _g2(x, y, 0.0, idn.mouth_y - 3.5, 15.0, 3.0)
        z -= 2.0 * _g2(x, y, 0.0, idn.mouth_y + 5.0, 14.0, 3.5)
        z += 2.5 * _g2(x, y, 0.0, idn.mouth_y + 15.0, 12.0, 3.0)
        z -= 7.0 * _g2(x, y, 0.0, idn.chin - 12.0, 13.0, 9.0)
        # Philtrum: a groove between two columns from the nose base to the upper lip.
        win = _g2(x, y, 0.0, 0.5 * (idn.nostril_y + idn.mouth_y) - 1.0, 9.0, 5.0)
        z += win * (0.8 * np.exp(-0.5 * (x / 1.8) ** 2) - 0.7 * np.exp(-0.5 * ((ax - 5.0) / 1.6) ** 2))
        return z

    def _sample_grid(self, grid: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Bilinear lookup in a texture covering the canonical box x in [-130, 130], y in [-150, 150] mm."""
        n_y, n_x = grid.shape
        mx = ((x + 130.0) * ((n_x - 1) / 260.0)).astype(np.float32)
        my = ((y + 150.0) * ((n_y - 1) / 300.0)).astype(np.float32)
        return cv2.remap(grid, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)

    @staticmethod
    def _lambert(z: np.ndarray, ppm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Diffuse (with a little wrap), Blinn specular and the normal's facing term of a height field."""
        gy, gx = np.gradient(z)
        gx = gx * ppm
        gy = gy * ppm
        inv = 1.0 / np.sqrt(gx * gx + gy * gy + 1.0)
        ndl = (gx * _LIGHT[0] + gy * _LIGHT[1] - _LIGHT[2]) * inv
        diff = np.clip((ndl + 0.15) / 1.15, 0.0, 1.0)
        ndh = np.clip((gx * _HALF[0] + gy * _HALF[1] - _HALF[2]) * inv, 0.0, 1.0)
        return diff.astype(np.float32), ndh.astype(np.float32), inv.astype(np.float32)

    def _layers(
        self, x: np.ndarray, y: np.ndarray, dz: np.ndarray | None, ppm: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Head layers on a canonical mm grid (``ppm`` grid pixels per mm).

        Returns premultiplied colour (h, w, 3), coverage (h, w), depth relative to the silhouette plane
        (h, w; mm, 0 outside the head), skin shading factor (h, w) and skull coverage without ears (h, w).
        ``dz`` is added to the skin depth (soft-tissue deformation, mm).
        """
        skin, a_skin, zs, shade, nf = self._skin_layer(x, y, dz, ppm)
        ears_c, a_ear, z_ear = self._ear_layer(x, y, ppm)
        hair_c, a_hair, zh = self._hair_layer(x, y, nf, ppm)
        # The hair casts a soft shadow on the forehead just below the hairline.
        shadow = cv2.GaussianBlur(a_hair, (0, 0), 2.5 * ppm)
        skin = skin * (1.0 - 0.35 * np.clip(shadow - a_hair, 0, 1))[..., None]
        # -- composite back to front: ears, skin, hair
        prem = ears_c * a_ear[..., None]
        cov = a_ear.copy()
        prem = prem * (1.0 - a_skin[..., None]) + skin * a_skin[..., None]
        cov = cov * (1.0 - a_skin) + a_skin
        prem = prem * (1.0 - a_hair[..., None]) + hair_c * a_hair[..., None]
        cov = cov * (1.0 - a_hair) + a_hair
        z = np.zeros(x.shape, np.float32)
        z = np.where(a_ear >= 0.5, z_ear, z)
        z = np.where(a_skin >= 0.5, zs, z)
        z = np.where(a_hair >= 0.5, np.minimum(zh, zs - 1.0), z)
        # Coverage without the ears: the cross-section of the skull used for the side shell of a posed head.
        skull = a_skin + a_hair * (1.0 - a_skin)
        return prem, cov, z.astype(np.float32), shade.astype(np.float32), skull.astype(np.float32)

    def _skin_layer(self, x: np.ndarray, y: np.ndarray, dz: np.ndarray | None, ppm: float
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Shaded skin colour, coverage, depth (mm), shading factor, and the fine noise the hair reuses."""
        idn = self._id
        ax = np.abs(x)
        r = self._egg(x, y)
        zs = self._skin_relief(x, y, r)
        if dz is not None:
            zs = zs + dz
        a_skin = _edge_alpha(r - 1.0)
        diff, ndh, facing = self._lambert(zs, ppm)
        sig_ao = _AO_SIGMA_MM * ppm
        # Occlusion fades out towards the outline, where the blur would otherwise see the empty plane
        # beyond the silhouette as a cavity and draw a dark seam.
        cav = (zs - cv2.GaussianBlur(zs, (0, 0), sig_ao)) * _smoothstep(1.0, 0.85, r)
        ao = np.clip(1.0 - 0.05 * cav, 0.55, 1.0)
        nf = self._sample_grid(self._noise_fine, x, y)
        nc = self._sample_grid(self._noise_coarse, x, y)
        alb = idn.skin_rgb.astype(np.float32) * (1.0 + 0.025 * nf + 0.02 * nc)[..., None]
        redden = idn.blush * _g2(ax, y, 38.0, 27.0, 13.0, 11.0) + 0.25 * _g2(x, y, 0.0, 33.0, 7.0, 6.0)
        redden += 0.3 * _g2(ax, y, 76.0, 15.0, 6.0, 20.0)
        alb = alb * (1.0 - redden[..., None] * np.array([0.0, 0.10, 0.09], dtype=np.float32))
        lid = _g2(ax, y, idn.eye_dx, -6.0, 11.0, 4.0)
        alb = alb * (1.0 - lid[..., None] * np.array([0.07, 0.11, 0.08], dtype=np.float32))
        if idn.stubble > 0:
            beard = _smoothstep(idn.nostril_y + 3.0, idn.nostril_y + 12.0, y) * (r < 1.02)
            beard = beard * (1.0 - 0.6 * _g2(x, y, 0.0, idn.mouth_y, idn.mouth_hw, 7.0))
            beard = beard * (0.75 + 0.25 * np.clip(nf, -1, 1)) * idn.stubble
            alb = alb * (1.0 - beard[..., None] * np.array([0.32, 0.3, 0.26], dtype=np.float32))
        shade = (0.40 + 0.72 * diff) * ao
        skin = alb * (shade[..., None] * np.array([1.0, 0.96, 0.94], dtype=np.float32))
        skin += (0.09 * 255.0) * (ndh**18)[..., None] * facing[..., None]
        return skin, a_skin, zs, shade, nf

    def _ear_layer(self, x: np.ndarray, y: np.ndarray, ppm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Ears: rotated ellipses beside the face, with a concave concha; colour, coverage and depth (mm)."""
        idn = self._id
        a_ear = np.zeros(x.shape, np.float32)
        z_ear = np.full(x.shape, 8.0, np.float32)
        for s in (-1.0, 1.0):
            ex, ey = s * (idn.face_hw + 1.0), 16.0
            c, sn = math.cos(math.radians(12.0 * s)), math.sin(math.radians(12.0 * s))
            dx, dy = x - ex, y - ey
            u, v = (c * dx + sn * dy) / 10.0, (-sn * dx + c * dy) / 26.0
            q = np.sqrt(u * u + v * v)
            a = _edge_alpha(q - 1.0)
            ze = 6.0 - 5.0 * np.sqrt(np.clip(1.0 - q * q, 0, 1)) + 5.0 * _g2(u, v, 0.25 * s, 0.0, 0.35, 0.45)
            take = a > a_ear
            z_ear = np.where(take, ze, z_ear)
            a_ear = np.maximum(a_ear, a)
        d_ear, _, _ = self._lambert(z_ear, ppm)
        ear_alb = idn.skin_rgb.astype(np.float32) * np.array([1.0, 0.93, 0.92], dtype=np.float32)
        ears_c = ear_alb * ((0.36 + 0.62 * d_ear) * (1.0 - 0.025 * (z_ear - 4.0)))[..., None]
        return ears_c, a_ear, z_ear

    def _hair_layer(self, x: np.ndarray, y: np.ndarray, nf: np.ndarray, ppm: float
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Hair: a cap on an inflated skull minus a face window whose top edge is the hairline.

        Returns colour, coverage and depth (mm); ``nf`` is the skin's fine noise, which roughens the edges.
        """
        idn = self._id
        ax = np.abs(x)
        vt, vs = idn.hair_top, idn.hair_volume
        yn = y / np.where(y < 0, idn.skull_top + vt, idn.chin)
        rh = ((np.abs(x) / (idn.face_hw * 1.05 + vs)) ** 2.3 + np.abs(yn) ** 2.3) ** (1.0 / 2.3)
        a_out = _edge_alpha(rh - 1.0)
        jag = 0.9 * np.clip(nf, -1.5, 1.5)
        cut = idn.hair_side_cut + 14.0 * _smoothstep(idn.face_hw - 6.0, idn.face_hw + vs, ax) - 6.0 * (1 - _smoothstep(
            idn.face_hw - 14.0, idn.face_hw - 4.0, ax))
        a_bot = np.clip(0.5 - ((y - cut) * ppm + jag * ppm), 0, 1)
        xw = x - 0.25 * idn.hair_part
        yw_c = 45.0
        bw = yw_c - idn.hairline_y - 3.0 * np.tanh((x - idn.hair_part) / 18.0) * np.sign(idn.hair_part)
        aw = idn.face_hw - 7.0
        fw = (np.abs(xw) / aw) ** 3.2 + (np.abs(y - yw_c) / bw) ** 3.2
        fw = fw ** (1.0 / 3.2) - 1.0
        a_win = _edge_alpha(fw, jag * ppm)
        a_hair = a_out * a_bot * (1.0 - a_win)
        zh = -(_FACE_DEPTH_MM * 0.92 + vt * 0.8) * np.sqrt(np.clip(1.0 - rh * rh, 0.0, 1.0))
        d_h, ndh_h, fac_h = self._lambert(zh.astype(np.float32), ppm)
        # Strands radiate from a crown behind the top of the head, so from the front they flow down the sides.
        cx_c, cy_c = idn.hair_part, -(idn.skull_top + 45.0)
        theta = np.arctan2(y - cy_c, x - cx_c)
        rad = np.hypot(x - cx_c, y - cy_c)
        n_t = self._strands.shape[1]
        st = cv2.remap(
            self._strands,
            ((theta + math.pi) * (n_t / (2 * math.pi))).astype(np.float32),
            (rad / 2.5).astype(np.float32),
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_WRAP,
        )
        hair_alb = idn.hair_rgb.astype(np.float32) * (0.62 + 0.76 * st)[..., None]
        hair_c = hair_alb * (0.35 + 0.8 * d_h)[..., None]
        hair_c += (0.16 * 255.0) * (ndh_h**9 * fac_h * (0.5 + st))[..., None] * (0.4 + idn.hair_rgb / 400.0)
        return hair_c, a_hair, zh

    def _render_region(
        self, x0: int, y0: int, x1: int, y1: int, dz_fn: Callable[[np.ndarray, np.ndarray], np.ndarray] | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Render the head over the background in a pixel box; supersampled, processed in row strips.

        Returns float colour (h, w, 3), depth (h, w) in mm, coverage (h, w), skin shading (h, w) and
        the coverage of the skull alone, without ears (h, w).
        """
        ss = self._ss
        ppm_ss = self._ppm * ss
        # Wide enough for the ambient-occlusion blur, so strips and sub-regions match the full render.
        margin = int(math.ceil(3.0 * _AO_SIGMA_MM * self._ppm)) + 3
        h, w = y1 - y0, x1 - x0
        rgb = np.empty((h, w, 3), np.float32)
        dep = np.empty((h, w), np.float32)
        cov = np.empty((h, w), np.float32)
        shd = np.empty((h, w), np.float32)
        sku = np.empty((h, w), np.float32)
        strip = max(16, 400_000 // max(1, (w + 2 * margin) * ss * ss))
        for r0 in range(0, h, strip):
            r1 = min(h, r0 + strip)
            ra, rb = r0 - margin, r1 + margin
            ca, cb = -margin, w + margin
            us = x0 + ca - 0.5 + (np.arange((cb - ca) * ss, dtype=np.float32) + 0.5) / ss
            vs = y0 + ra - 0.5 + (np.arange((rb - ra) * ss, dtype=np.float32) + 0.5) / ss
            xm = ((us - self._cx) / self._ppm)[None, :]
            ym = ((vs - self._cy) / self._ppm)[:, None]
            xg, yg = np.broadcast_arrays(xm, ym)
            xg = np.ascontiguousarray(xg, dtype=np.float32)
            yg = np.ascontiguousarray(yg, dtype=np.float32)
            dz = None if dz_fn is None else dz_fn(xg, yg).astype(np.float32)
            prem, c, z, s, k = self._layers(xg, yg, dz, ppm_ss)
            uu, vv = np.broadcast_arrays(us[None, :], vs[:, None])
            bg = self._background(uu, vv).astype(np.float32)
            col = bg * (1.0 - c[..., None]) + prem
            zabs = z + self._z_offset
            sl = slice(margin * ss, (margin + r1 - r0) * ss), slice(margin * ss, (margin + w) * ss)
            outs = []
            for arr in (col[sl], zabs[sl], c[sl], s[sl], k[sl]):
                if ss > 1:
                    arr = cv2.resize(arr, (w, r1 - r0), interpolation=cv2.INTER_AREA)
                outs.append(arr)
            rgb[r0:r1], zz, cov[r0:r1], shd[r0:r1], sku[r0:r1] = outs
            dep[r0:r1] = np.where(outs[2] >= 0.5, zz, self.background_distance_mm)
        return rgb, dep, cov, shd, sku

    # ------------------------------------------------------------------ soft-tissue AU deltas

    def _build_blendshapes(self) -> tuple[tuple[int, tuple[int, int, int, int], np.ndarray, np.ndarray], ...]:
        """Per-AU colour and depth deltas of soft-tissue changes, rendered through the shading model."""
        hx0, hy0, _, _ = self._head_box
        out = []
        for au, (bx0, bx1, by0, by1), fn in self._blendshape_specs():
            px0, py0, px1, py1 = self._box_px(bx0, bx1, by0, by1)
            if px1 - px0 < 1 or py1 - py0 < 1:
                continue
            rgb_f, dep_f, _, _, _ = self._render_region(px0, py0, px1, py1, fn)
            sl = slice(py0 - hy0, py1 - hy0), slice(px0 - hx0, px1 - hx0)
            d_rgb = (rgb_f - self._base_rgb_f[sl]).astype(np.float32)
            d_z = (dep_f - self._base_z[sl]).astype(np.float32)
            # Where the head edge would move the background/head split, keep the base decision.
            d_z[np.abs(d_z) > 40.0] = 0.0
            out.append((au, (px0, py0, px1, py1), d_rgb, d_z))
        return tuple(out)

    def _blendshape_specs(self) -> tuple[tuple[int, tuple[float, float, float, float], Callable], ...]:
        """Per AU: its region ``(x0, x1, y0, y1)`` in mm and its skin displacement ``dz(x, y)`` in mm."""
        idn = self._id
        e, hw = idn.eye_dx, idn.eye_hw
        my, ny = idn.mouth_y, idn.nostril_y

        def ripple(v: np.ndarray, period: float, phase: float) -> np.ndarray:
            return np.sin(2.0 * np.pi * (v - phase) / period)

        def au1(x, y):
            win = _smoothstep(idn.hairline_y + 2.0, idn.hairline_y + 12.0, y) * (1 - _smoothstep(-40.0, -30.0, y))
            return 0.9 * ripple(y, 9.0, -36.0) * win * np.exp(-((x / 24.0) ** 2))

        def au2(x, y):
            win = _smoothstep(idn.hairline_y + 2.0, idn.hairline_y + 12.0, y) * (1 - _smoothstep(-38.0, -28.0, y))
            return 0.8 * ripple(y, 8.5, -33.0) * win * np.exp(-(((np.abs(x) - 34.0) / 15.0) ** 2))

        def au4(x, y):
            ax = np.abs(x)
            furrow = 1.4 * np.exp(-0.5 * ((ax - 4.0) / 1.3) ** 2) * _g2(x, y, 0.0, idn.brow_y + 4.0, 20.0, 7.0)
            root = 1.0 * _g2(x, y, 0.0, -5.0, 7.0, 1.4)
            bunch = -2.5 * _g2(ax, y, 12.0, idn.brow_y + 2.0, 6.0, 5.0)
            return furrow + root + bunch

        def au6(x, y):
            ax = np.abs(x)
            cheek = -5.5 * _g2(ax, y, 37.0, 15.0, 12.0, 10.0) + 2.5 * _g2(ax, y, 40.0, 26.0, 12.0, 10.0)
            bag = -1.6 * _g2(ax, y, e, 8.0, 9.0, 2.4)
            dx, dy = ax - (e + hw + 2.0), y + 1.0
            ang = np.arctan2(dy, np.maximum(dx, 1e-3))
            dist = np.hypot(dx, dy)
            feet = 0.7 * np.cos(ang * 9.0) * _smoothstep(2.0, 5.0, dist) * (1 - _smoothstep(11.0, 16.0, dist))
            feet = feet * (dx > 0) * (np.abs(ang) < 0.9)
            return cheek + bag + feet

        def au7(x, y):
            return -1.3 * _g2(np.abs(x), y, e, 6.5, 10.0, 2.0)

        def au9(x, y):
            win = _g2(x, y, 0.0, -4.0, 7.0, 6.0)
            return 0.8 * ripple(y, 4.5, -6.0) * win - 2.0 * _g2(np.abs(x), y, 14.0, 35.0, 5.0, 4.0)

        def au10(x, y):
            return -1.8 * _g2(x, y, 0.0, ny + 6.0, 14.0, 4.5) - 1.5 * _g2(np.abs(x), y, 22.0, ny + 2.0, 5.0, 6.0)

        def au12(x, y):
            return -4.5 * _g2(np.abs(x), y, 36.0, 36.0, 12.0, 10.0)

        def au14(x, y):
            ax = np.abs(x)
            pit = 2.4 * _g2(ax, y, idn.mouth_hw + 6.0, my, 2.2, 3.8)
            return pit - 1.0 * _g2(ax, y, idn.mouth_hw + 1.0, my, 3.0, 4.0)

        def au15(x, y):
            ax = np.abs(x)
            groove = 1.4 * np.exp(-0.5 * (((ax - idn.mouth_hw - 3.0) - 0.35 * (y - my - 8.0)) / 1.5) ** 2)
            jowl = 1.5 * _g2(ax, y, idn.mouth_hw + 8.0, my + 14.0, 5.0, 5.0)
            return groove * _g2(x, y, 0.0, my + 12.0, 60.0, 7.0) - jowl

        def au17(x, y):
            tex = self._sample_grid(self._chin_noise, x * 2.0, y * 2.0 - 150.0)
            boss = -4.0 * _g2(x, y, 0.0, idn.chin - 16.0, 12.0, 7.0) + 2.0 * _g2(x, y, 0.0, idn.chin - 8.0, 12.0, 6.0)
            crease = 2.0 * np.exp(-0.5 * ((y - (my + 14.0) + 0.012 * x * x) / 2.0) ** 2) * np.exp(-((x / 15.0) ** 4))
            return boss + crease + 0.6 * tex * _g2(x, y, 0.0, idn.chin - 14.0, 11.0, 8.0)

        def au20(x, y):
            return 1.2 * _g2(np.abs(x), y, idn.mouth_hw + 11.0, my + 4.0, 2.2, 8.0)

        def au23(x, y):
            lines = 0.22 * np.sin(2.0 * np.pi * x / 3.2) * _g2(x, y, 0.0, my - 8.0, 12.0, 2.5)
            return lines - 1.0 * _g2(x, y, 0.0, my + 11.0, 12.0, 3.0)

        return (
            (1, (-45, 45, idn.hairline_y - 2.0, -22.0), au1),
            (2, (-62, 62, idn.hairline_y - 2.0, -20.0), au2),
            (4, (-26, 26, idn.brow_y - 14.0, 2.0), au4),
            (6, (-72, 72, -16.0, 48.0), au6),
            (7, (-e - 30, e + 30, -2.0, 15.0), au7),
            (9, (-26, 26, -22.0, 50.0), au9),
            (10, (-34, 34, ny - 12.0, ny + 22.0), au10),
            (12, (-68, 68, 2.0, 70.0), au12),
            (14, (-idn.mouth_hw - 14, idn.mouth_hw + 14, my - 14.0, my + 14.0), au14),
            (15, (-idn.mouth_hw - 20, idn.mouth_hw + 20, my - 2.0, my + 30.0), au15),
            (17, (-32, 32, my + 4.0, idn.chin + 6.0), au17),
            (20, (-idn.mouth_hw - 22, idn.mouth_hw + 22, my - 22.0, my + 30.0), au20),
            (23, (-28, 28, my - 16.0, my + 22.0), au23),
        )

    # ------------------------------------------------------------------ jaw drop

    def _stretch_jaw(
        self, rgb: np.ndarray, depth: np.ndarray, extras: tuple[np.ndarray, ...], jaw_mm: float
    ) -> tuple[np.ndarray, ...]:
        """Move the chin down by ``jaw_mm`` by remapping rows of the lower face.

        ``rgb`` and ``depth`` are full frames changed in place; ``extras`` are head-box images
        (coverage, rim colour) returned stretched the same way, as new arrays.
        """
        ya, yb, yc, ye = self._jaw_rows
        r0, r1 = self._jaw_span
        d = min(jaw_mm * self._ppm, 0.8 * (ye - yc))
        y = np.arange(r0, r1, dtype=np.float64)
        src = y.copy()
        # Three bands: the lip line stretches open, lower lip and chin translate, the area under the chin
        # is compressed so the neck-side background stays where it was.
        m_a = (y >= ya) & (y < yb + d)
        src[m_a] = ya + (y[m_a] - ya) * (yb - ya) / (yb - ya + d)
        m_b = (y >= yb + d) & (y < yc + d)
        src[m_b] = y[m_b] - d
        m_c = (y >= yc + d) & (y < ye)
        src[m_c] = yc + (y[m_c] - yc - d) * (ye - yc) / (ye - yc - d)
        x0, y0, x1, y1 = self._head_box
        mapy = np.repeat((src - r0).astype(np.float32)[:, None], x1 - x0, axis=1)
        # The opening jaw swings down and back, so the lower face also narrows a little in the image.
        narrow = np.clip((y - ya) / max(yb + d - ya, 1e-6), 0.0, 1.0) * (0.12 * jaw_mm / _JAW_DROP_MM)
        cxr = np.float32(self._cx - x0)
        mapx = cxr + (self._jaw_mapx - cxr) * (1.0 + narrow.astype(np.float32))[:, None]
        m1, m2 = cv2.convertMaps(mapx, mapy, cv2.CV_16SC2)
        a0, a1 = r0 - y0, r1 - y0
        stretched = cv2.remap(rgb[r0:r1, x0:x1], m1, m2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        cov = cv2.remap(self._base_alpha[a0:a1], m1, m2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        # The background gradient was stretched too; put the true background back where the head is not.
        bg = self._bg_rgb[r0:r1, x0:x1]
        bg_moved = cv2.remap(bg, m1, m2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        fix = (bg.astype(np.int16) - bg_moved) * (255 - cov.astype(np.int16))[..., None] // 255
        rgb[r0:r1, x0:x1] = np.clip(stretched + fix, 0, 255).astype(np.uint8)
        depth[r0:r1, x0:x1] = cv2.remap(depth[r0:r1, x0:x1], mapx, mapy, cv2.INTER_NEAREST,
                                        borderMode=cv2.BORDER_REPLICATE)
        out = []
        for arr in extras:
            arr = arr.copy()
            arr[a0:a1] = cv2.remap(arr[a0:a1], m1, m2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            out.append(arr)
        return tuple(out)

    # ------------------------------------------------------------------ brows

    def _draw_brows(self, rgb: np.ndarray, a: dict[int, float]) -> None:
        """Brows as tapered hair bands moved by AU1/2/4 (and slightly by AU6/7/9); AU4 adds glabellar furrows."""
        idn = self._id
        t = self._brow_t
        a1, a2, a4, a9 = a[1], a[2], a[4], a[9]
        for s in (-1.0, 1.0):
            col = idn.brow_rgb * (0.55 + 0.5 * self._shade_at(s * idn.eye_dx, idn.brow_y))
            x_in, x_out = 11.0, idn.eye_dx + idn.eye_hw + 6.0
            x = x_in + (x_out - x_in) * t
            y = idn.brow_y + 0.5 * t - idn.brow_arch * np.sin(np.pi * t**1.6)
            # AU1 lifts the inner end (oblique "worried" brow), AU2 the outer part, AU4 pulls down and in.
            y = y - 8.0 * a1 * (1.0 - t) ** 1.3 - 7.5 * a2 * np.sin(0.5 * np.pi * t) ** 1.4
            y = y + 5.0 * a4 * (1.0 - 0.5 * t) + 1.6 * a9 * (1.0 - t) + 1.0 * (a[6] + a[7]) * t
            x = x - 4.0 * a4 * (1.0 - t) ** 1.5 - 1.0 * a9 * (1.0 - t)
            th = idn.brow_thick * np.interp(t, [0.0, 0.12, 0.55, 1.0], [0.8, 1.0, 0.9, 0.35]) * (1.0 + 0.15 * a4)
            tx, ty = np.gradient(x), np.gradient(y)
            nrm = np.hypot(tx, ty)
            nx, ny = -ty / nrm, tx / nrm
            top_x, top_y = x + nx * th / 2, y + ny * th / 2
            bot_x, bot_y = x - nx * th / 2, y - ny * th / 2
            px = np.concatenate([top_x, bot_x[::-1]]) * s
            py = np.concatenate([top_y, bot_y[::-1]])
            bx0, by0, bx1, by1 = self._box_px(px.min(), px.max(), py.min(), py.max())
            if bx1 <= bx0 or by1 <= by0:
                continue
            patch = rgb[by0:by1, bx0:bx1]
            mask = np.zeros(patch.shape[:2], np.uint8)
            cv2.fillPoly(mask, [self._fp(px, py, bx0, by0)], 225, _AA, _FP_SHIFT)
            # A few darker hair strokes along the brow keep it from looking like a painted band.
            for off in (-0.22, 0.0, 0.22):
                cv2.polylines(mask, [self._fp(s * (x + nx * th * off), y + ny * th * off, bx0, by0)], False, 250,
                              1, _AA, _FP_SHIFT)
            src = np.empty_like(patch)
            src[...] = np.clip(col, 0, 255).astype(np.uint8)
            _blend_mask(patch, src, mask)
        if a4 > 0.02:
            furrows = [np.array([[s * 3.2, idn.brow_y - 5.0], [s * 3.8, idn.brow_y + 2.0], [s * 3.4, idn.brow_y + 8.0]])
                       for s in (-1.0, 1.0)]
            self._shade_lines(rgb, furrows, 0.6, 0.4 * min(1.0, 1.2 * a4))

    # ------------------------------------------------------------------ eyes

    def _eye_curves(
        self, s: float, a: dict[int, float]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Lid margins of the eye on side ``s`` (-1 image left, +1 right), inner to outer corner.

        Returns x, the corner-to-corner chord y, upper-lid y, lower-lid y (mm) and the upper-lid profile.
        AU5 raises the upper lid, AU6/AU7 raise and straighten the lower lid, AU45 closes both onto a line
        in the lower third of the opening.
        """
        idn = self._id
        t = self._eye_t
        ex = s * idn.eye_dx
        ix, iy = ex - s * idn.eye_hw, 0.8
        ox, oy = ex + s * idn.eye_hw, -1.4
        px = ix + (ox - ix) * t
        py = iy + (oy - iy) * t
        bu = np.sin(np.pi * t**0.9) ** 0.85
        bl = np.sin(np.pi * t**1.15)
        hu = idn.lid_up * (1.0 + 0.65 * a[5] - 0.35 * a[7] - 0.12 * a[6] - 0.18 * a[4])
        hl = idn.lid_low * (1.0 + 0.12 * a[5] - 0.6 * a[7] - 0.5 * a[6])
        yu = py - hu * bu
        yl = py + hl * bl
        c = a[45]
        y_closed = py + 0.55 * idn.lid_low * (1.0 - 0.5 * max(a[6], a[7])) * bl
        yu = yu + (y_closed - yu) * c
        yl = yl + (y_closed - yl) * c
        return px, py, yu, yl, bu

    def _draw_eyes(self, rgb: np.ndarray, a: dict[int, float]) -> None:
        """Sclera, iris, pupil and highlight clipped to the lid opening, then crease, lower lid and lashes."""
        idn = self._id
        lash = np.array([24.0, 20.0, 20.0])
        for s in (-1.0, 1.0):
            # The eyeball is glossy and sits in the socket: it follows the face shading only partly.
            shade = float(np.clip(0.35 + 0.7 * self._shade_at(s * idn.eye_dx, -2.0), 0.6, 1.0))
            sclera = np.array([240.0, 236.0, 228.0]) * shade
            iris_col = idn.iris_rgb * shade
            px, py, yu, yl, bu = self._eye_curves(s, a)
            ex = s * idn.eye_dx
            if np.max(yl - yu) > 0.05:
                bx0, by0, bx1, by1 = self._box_px(px.min(), px.max(), yu.min(), yl.max())
                patch = rgb[by0:by1, bx0:bx1]
                ap = self._fp(np.concatenate([px, px[::-1]]), np.concatenate([yu, yl[::-1]]), bx0, by0)
                mask = np.zeros(patch.shape[:2], np.uint8)
                cv2.fillPoly(mask, [ap], 255, _AA, _FP_SHIFT)
                tmp = np.empty_like(patch)
                tmp[...] = sclera.astype(np.uint8)
                # Sclera darkens towards the corners, where the eyeball turns away.
                for frac, k in ((0.0, 0.86), (1.0, 0.86)):
                    cx = px[0] + (px[-1] - px[0]) * frac
                    cv2.circle(tmp, self._fpt(cx, py[0] + (py[-1] - py[0]) * frac, bx0, by0),
                               self._len_fp(idn.eye_hw * 0.28), tuple((sclera * k).tolist()), -1, _AA, _FP_SHIFT)
                ic = self._fpt(ex, -0.4, bx0, by0)
                r_i = idn.iris_r
                cv2.circle(tmp, ic, self._len_fp(r_i), tuple((iris_col * 0.55).tolist()), -1, _AA, _FP_SHIFT)
                cv2.circle(tmp, ic, self._len_fp(r_i * 0.86), tuple(iris_col.tolist()), -1, _AA, _FP_SHIFT)
                cv2.circle(tmp, ic, self._len_fp(r_i * 0.6), tuple(np.clip(iris_col * 1.18, 0, 255).tolist()), -1,
                           _AA, _FP_SHIFT)
                cv2.circle(tmp, ic, self._len_fp(r_i * 0.4), (12, 10, 10), -1, _AA, _FP_SHIFT)
                cv2.circle(tmp, self._fpt(ex - 0.35 * r_i, -0.4 - 0.35 * r_i, bx0, by0), self._len_fp(r_i * 0.2),
                           (250, 250, 250), -1, _AA, _FP_SHIFT)
                # Shadow of the upper lid and lashes on the eyeball.
                cv2.polylines(tmp, [self._fp(px, yu + 0.4, bx0, by0)], False, tuple((sclera * 0.55).tolist()),
                              self._thick(1.1), _AA, _FP_SHIFT)
                cv2.circle(tmp, self._fpt(px[0] + s * 1.2, py[0], bx0, by0), self._len_fp(1.4),
                           tuple((np.array([205.0, 130.0, 128.0]) * shade).tolist()), -1, _AA, _FP_SHIFT)
                _blend_mask(patch, tmp, mask)
            skin = self._sample_rgb(ex, -9.0)
            # Upper-lid crease stays put while the lid margin moves; it is pushed up by a raised lid.
            crease = py - (idn.lid_up + idn.crease_gap) * bu + 1.2 * a[4] + 0.8 * a[45]
            crease = np.minimum(crease, yu - 1.0)
            sel = slice(2, -2)
            cv2.polylines(rgb, [self._fp(px[sel], crease[sel])], False, tuple((skin * 0.72).tolist()),
                          self._thick(0.6), _AA, _FP_SHIFT)
            low = self._sample_rgb(ex, 6.0)
            cv2.polylines(rgb, [self._fp(px[1:-1], yl[1:-1] + 0.3)], False, tuple((low * 0.7).tolist()),
                          self._thick(0.6), _AA, _FP_SHIFT)
            lx = np.append(px, px[-1] + s * 2.0)
            ly = np.append(yu, yu[-1] - 1.2)
            cv2.polylines(rgb, [self._fp(lx, ly)], False, tuple(lash.tolist()), self._thick(1.6), _AA, _FP_SHIFT)

    # ------------------------------------------------------------------ nose

    def _draw_nose(self, rgb: np.ndarray, a: dict[int, float]) -> None:
        """Nostrils and alar creases (raised and flared by AU9, AU10); AU9 adds bridge wrinkles."""
        idn = self._id
        up = 3.2 * a[9] + 1.6 * a[10]
        flare = 1.6 * a[9] + 0.5 * a[10]
        skin = self._sample_rgb(0.0, idn.nostril_y - 6.0)
        nostril = skin * 0.25 + np.array([12.0, 4.0, 4.0])
        nw = idn.nose_width
        wings = []
        for s in (-1.0, 1.0):
            c = self._fpt(s * (6.8 * nw + 0.4 * flare), idn.nostril_y - up)
            axes = (self._len_fp(3.0 * nw * (1.0 + 0.12 * a[9])), self._len_fp(1.5 * (1.0 + 0.2 * a[9])))
            cv2.ellipse(rgb, c, axes, -s * 18.0, 0, 360, tuple(nostril.tolist()), -1, _AA, _FP_SHIFT)
            wx = np.array([10.5, 15.0, 17.0, 15.5, 11.5]) * nw + np.array([0, 1, 1, 1, 0.5]) * flare
            wy = np.array([31.5, 34.0, 38.5, 42.5, 44.0]) + (idn.nostril_y - 42.0) - up
            wings.append(np.stack([s * wx, wy], axis=1))
        self._shade_lines(rgb, wings, 0.6, 0.22)
        if a[9] > 0.02:
            xs = np.linspace(-6.0, 6.0, 7)
            lines = [np.stack([xs, yy + 0.04 * xs * xs], axis=1) for yy in (-8.0, -4.0, 0.0)]
            self._shade_lines(rgb, lines, 0.5, 0.38 * min(1.0, 1.2 * a[9]))

    # ------------------------------------------------------------------ mouth

    def _mouth_shape(self, a: dict[int, float], jaw_mm: float) -> dict[str, np.ndarray | float]:
        """Lip contours (mm) for the current AUs: inner/outer, upper/lower, sampled corner to corner."""
        idn = self._id
        t = self._mouth_t
        at = np.abs(t)
        a10, a12, a14, a15, a17, a20, a23, a25, a26 = (a[i] for i in (10, 12, 14, 15, 17, 20, 23, 25, 26))
        hw = idn.mouth_hw * (1.0 + 0.20 * a12 + 0.30 * a20 - 0.13 * a23 - 0.10 * a14 - 0.10 * a26 - 0.04 * a17)
        y0 = idn.mouth_y - 2.0 * a17 - 1.0 * a10
        cdy = -10.0 * a12 + 5.0 * a15 + 1.2 * a20 - 1.0 * a14 + 2.0 * a17 + 1.0 * a26
        line = y0 + cdy * at**1.7
        r10 = 5.5 * a10 * (1.0 - at**4)
        opening = 4.0 * a25 + 0.85 * jaw_mm
        o = opening * np.clip(1.0 - at**2.2, 0.0, 1.0) ** 0.75
        push = 2.5 * a17 * (1.0 - at**2)
        y_iu = line - r10 - 0.12 * o
        y_il = line - 0.5 * r10 + 0.88 * o - push
        y_il = np.maximum(y_il, y_iu)
        tu = idn.upper_lip * (1 - 0.6 * a23) * (1 - 0.25 * a20) * (1 - 0.22 * a12) * (1 - 0.15 * a14) * (1 - 0.12 * a26)
        tl = idn.lower_lip * (1 - 0.55 * a23) * (1 - 0.25 * a20) * (1 - 0.15 * a12) * (1 - 0.1 * a14)
        tl *= (1 + 0.15 * a17) * (1 - 0.1 * a26)
        bow = 0.86 + 0.22 * np.exp(-(((at - 0.28) / 0.14) ** 2)) - 0.16 * np.exp(-((t / 0.09) ** 2))
        y_ou = y_iu - tu * np.clip(1.0 - at**2.5, 0.0, 1.0) ** 0.5 * bow
        y_ol = y_il + tl * np.clip(1.0 - at**2.2, 0.0, 1.0) ** 0.6
        return {"x": t * hw, "hw": hw, "y0": y0, "y_iu": y_iu, "y_il": y_il, "y_ou": y_ou, "y_ol": y_ol,
                "corner_y": float(line[0]), "gap": float(np.max(y_il - y_iu))}

    def _draw_folds(self, rgb: np.ndarray, a: dict[int, float], mouth: dict) -> None:
        """Nasolabial folds (deepened by AU12, AU10, AU9, AU6), AU14 dimples and the AU17 chin crease."""
        idn = self._id
        strength = 0.04 + 0.8 * a[12] + 0.6 * a[10] + 0.3 * a[6] + 0.4 * a[9] + 0.2 * a[14] + 0.15 * a[20]
        strength = min(1.0, strength)
        up = 3.2 * a[9] + 1.6 * a[10]
        hw, cy = mouth["hw"], mouth["corner_y"]
        folds, highlights = [], []
        for s in (-1.0, 1.0):
            p0 = (s * (17.5 * idn.nose_width + 0.5 * up), idn.nostril_y - 4.0 - up)
            p2 = (s * (hw + 3.5 + 1.5 * a[12]), cy + 1.5 - 1.0 * a[12])
            p1 = (s * (0.5 * (abs(p0[0]) + abs(p2[0])) + 5.0 + 2.0 * a[12]), 0.5 * (p0[1] + p2[1]) - 3.0)
            pts = _bezier(p0, p1, p2, 12)
            folds.append(pts)
            highlights.append(pts + np.array([s * 1.4, -0.4]))
        # The cheek bulging over the fold catches light just outside the crease.
        self._shade_lines(rgb, highlights, 1.2, -0.14 * strength)
        self._shade_lines(rgb, folds, 0.8, 0.42 * strength)
        if a[14] > 0.02:
            dimples = [_bezier((s * (hw + 3.0), cy - 4.0), (s * (hw + 5.0), cy), (s * (hw + 3.0), cy + 4.0), 7)
                       for s in (-1.0, 1.0)]
            self._shade_lines(rgb, dimples, 0.7, 0.4 * min(1.0, 1.2 * a[14]))
        if a[17] > 0.02:
            xs = np.linspace(-11.0, 11.0, 9)
            ys = float(mouth["y_ol"][len(mouth["y_ol"]) // 2]) + 4.0 + 0.02 * xs * xs
            self._shade_lines(rgb, [np.stack([xs, ys], axis=1)], 0.7, 0.35 * min(1.0, 1.2 * a[17]))

    def _draw_mouth(self, rgb: np.ndarray, depth: np.ndarray, a: dict[int, float], m: dict, jaw_mm: float) -> None:
        """Mouth interior (teeth, tongue; deeper in depth) when the lips part, then both lips and lip line."""
        idn = self._id
        x, y_iu, y_il, y_ou, y_ol = m["x"], m["y_iu"], m["y_il"], m["y_ou"], m["y_ol"]
        shade = float(np.clip(self._shade_at(0.0, idn.mouth_y), 0.5, 1.1))
        lip = idn.lip_rgb * shade
        if m["gap"] > 0.25:
            inner_x = np.concatenate([x, x[::-1]])
            inner_y = np.concatenate([y_iu, y_il[::-1]])
            bx0, by0, bx1, by1 = self._box_px(x.min(), x.max(), y_iu.min() - 9.0, y_il.max() + 1.0)
            patch = rgb[by0:by1, bx0:bx1]
            mask = np.zeros(patch.shape[:2], np.uint8)
            cv2.fillPoly(mask, [self._fp(inner_x, inner_y, bx0, by0)], 255, _AA, _FP_SHIFT)
            tmp = np.empty_like(patch)
            tmp[...] = (np.array([92.0, 34.0, 38.0]) * shade).astype(np.uint8)
            mid = 0.5 * (y_iu[len(x) // 2] + y_il[len(x) // 2])
            cv2.ellipse(tmp, self._fpt(0.0, mid, bx0, by0),
                        (self._len_fp(0.55 * m["hw"]), self._len_fp(max(0.3, 0.45 * m["gap"]))), 0, 0, 360,
                        tuple((np.array([48.0, 14.0, 18.0]) * shade).tolist()), -1, _AA, _FP_SHIFT)
            teeth = np.array([236.0, 230.0, 214.0]) * shade
            th = 0.78 * idn.mouth_hw
            tx = np.linspace(-th, th, 15)
            edge = idn.mouth_y + 1.2 - 2.4 * (tx / th) ** 2
            if jaw_mm > 4.0:
                tongue_y = idn.mouth_y + 0.85 * jaw_mm + 2.0
                cv2.ellipse(tmp, self._fpt(0.0, tongue_y, bx0, by0),
                            (self._len_fp(0.62 * m["hw"]), self._len_fp(4.0 + 0.15 * jaw_mm)), 0, 180, 360,
                            tuple((np.array([178.0, 78.0, 88.0]) * shade * 0.85).tolist()), -1, _AA, _FP_SHIFT)
            low_edge = edge + 0.8 + 0.95 * jaw_mm + 0.4 * (tx / th) ** 2
            lower = np.concatenate([tx, tx[::-1] * 0.9])
            lower_y = np.concatenate([low_edge, low_edge[::-1] + 9.0])
            cv2.fillPoly(tmp, [self._fp(lower, lower_y, bx0, by0)], tuple((teeth * 0.78).tolist()), _AA, _FP_SHIFT)
            upper = np.concatenate([tx, tx[::-1] * 0.95])
            upper_y = np.concatenate([edge, np.full_like(edge, idn.mouth_y - 12.0)])
            cv2.fillPoly(tmp, [self._fp(upper, upper_y, bx0, by0)], tuple(teeth.tolist()), _AA, _FP_SHIFT)
            gap_col = tuple((teeth * 0.72).tolist())
            for gx in (0.0, -4.3, 4.3, -8.2, 8.2, -11.8, 11.8, -15.0, 15.0):
                if abs(gx) < th:
                    ey = idn.mouth_y + 1.2 - 2.4 * (gx / th) ** 2
                    cv2.line(tmp, self._fpt(gx, ey - 7.0, bx0, by0), self._fpt(gx, ey, bx0, by0), gap_col, 1, _AA,
                             _FP_SHIFT)
            # Upper teeth and lips cast a shadow into the mouth.
            cv2.polylines(tmp, [self._fp(x, y_iu + 0.6, bx0, by0)], False,
                          tuple((np.array([60.0, 20.0, 24.0]) * shade).tolist()), self._thick(1.2), _AA, _FP_SHIFT)
            _blend_mask(patch, tmp, mask)
            pts = self._fp(inner_x, inner_y).reshape(-1, 2)
            interior_depth = int(round(self._mouth_depth + 30.0 + 0.8 * jaw_mm))
            cv2.fillPoly(depth, [pts], interior_depth, cv2.LINE_8, _FP_SHIFT)
        upper_poly = self._fp(np.concatenate([x, x[::-1]]), np.concatenate([y_ou, y_iu[::-1]]))
        lower_poly = self._fp(np.concatenate([x, x[::-1]]), np.concatenate([y_il, y_ol[::-1]]))
        cv2.fillPoly(rgb, [upper_poly], tuple((lip * 0.8).tolist()), _AA, _FP_SHIFT)
        cv2.fillPoly(rgb, [lower_poly], tuple(lip.tolist()), _AA, _FP_SHIFT)
        # Lower-lip highlight: a lighter inset band where the lip faces the key light.
        n = len(x)
        sel = slice(n // 5, n - n // 5)
        hx = x[sel] * 0.8 - 1.0
        hy_top = y_il[sel] + 0.35 * (y_ol[sel] - y_il[sel])
        hy_bot = y_il[sel] + 0.6 * (y_ol[sel] - y_il[sel])
        hl_poly = self._fp(np.concatenate([hx, hx[::-1]]), np.concatenate([hy_top, hy_bot[::-1]]))
        cv2.fillPoly(rgb, [hl_poly], tuple(np.clip(lip * 1.12, 0, 255).tolist()), _AA, _FP_SHIFT)
        line_col = tuple((lip * 0.42).tolist())
        cv2.polylines(rgb, [self._fp(x, y_iu)], False, line_col, self._thick(0.7), _AA, _FP_SHIFT)
        if m["gap"] > 0.25:
            cv2.polylines(rgb, [self._fp(x, y_il)], False, tuple((lip * 0.6).tolist()), self._thick(0.5), _AA,
                          _FP_SHIFT)
        for s in (-1.0, 1.0):
            cx, cy = s * m["hw"], m["corner_y"]
            cv2.line(rgb, self._fpt(cx - s * 1.0, cy), self._fpt(cx + s * 1.6, cy + 0.4), line_col, self._thick(0.8),
                     _AA, _FP_SHIFT)

    # ------------------------------------------------------------------ head pose

    def _draw_glasses(self, rgb: np.ndarray, depth: np.ndarray) -> None:
        """Spectacles: tinted lenses, rims, bridge and temples; the frame also shows in depth."""
        g, idn = self._glasses, self._id
        assert g is not None
        theta = np.linspace(0.0, 2 * np.pi, 48, endpoint=False)
        c, sn = np.cos(theta), np.sin(theta)
        e = 2.0 / g.squareness
        rims = []
        for side in (-1.0, 1.0):
            rx = side * idn.eye_dx + g.lens_hw * np.sign(c) * np.abs(c) ** e
            ry = g.lens_y + g.lens_hh * np.sign(sn) * np.abs(sn) ** e
            rims.append(self._fp(rx, ry))
        if g.tint > 0:
            mask = np.zeros(rgb.shape[:2], np.uint8)
            cv2.fillPoly(mask, rims, 255, _AA, _FP_SHIFT)
            tinted = cv2.multiply(rgb, (1.0 - g.tint,) * 3 + (0.0,))
            _blend_mask(rgb, tinted, mask)
        inner = idn.eye_dx - g.lens_hw
        bridge = _bezier((-inner, g.lens_y - 0.3 * g.lens_hh), (0.0, g.lens_y - 0.6 * g.lens_hh - 3.0),
                         (inner, g.lens_y - 0.3 * g.lens_hh), 9)
        temples = [np.array([[side * (idn.eye_dx + g.lens_hw), g.lens_y - 0.4 * g.lens_hh],
                             [side * (idn.face_hw - 7.0), g.lens_y - 0.6 * g.lens_hh - 1.0]]) for side in (-1.0, 1.0)]
        lines = rims + [self._fp(bridge[:, 0], bridge[:, 1])] + [self._fp(t[:, 0], t[:, 1]) for t in temples]
        colour = tuple(g.rgb.tolist())
        cv2.polylines(rgb, lines, True, colour, self._thick(g.frame_mm), _AA, _FP_SHIFT)
        # The frame sits about 12 mm in front of the eyes (closed polylines also close bridge and temples,
        # which are two-point or open curves: draw those open).
        frame_z = int(self._base_depth[self._iy(0.0), self._ix(idn.eye_dx)]) - 12
        cv2.polylines(depth, rims, True, frame_z, self._thick(g.frame_mm), cv2.LINE_8, _FP_SHIFT)
        cv2.polylines(depth, lines[2:], False, frame_z, self._thick(g.frame_mm), cv2.LINE_8, _FP_SHIFT)

    def _apply_translation(self, rgb: np.ndarray, depth: np.ndarray, x_mm: float, y_mm: float, z_mm: float
                           ) -> tuple[np.ndarray, np.ndarray]:
        """Move the rendered head by ``(x, y, z)`` mm: weak perspective scales it about its centre.

        The head (pixels closer than the wall) is warped with its coverage and composited over the
        background; its depth grows by ``z_mm``.
        """
        ppm = self._ppm
        distance = float(self._pivot[2])
        scale = distance / (distance + z_mm)
        hx, hy = self._cx, self._cy + self._head_centre_y * ppm
        m = np.array([[scale, 0.0, hx * (1.0 - scale) + x_mm * ppm * scale],
                      [0.0, scale, hy * (1.0 - scale) + y_mm * ppm * scale]])
        bg_mm = int(round(self.background_distance_mm))
        head = (depth < bg_mm).view(np.uint8) * np.uint8(255)
        out_rgb, out_depth = self._bg_rgb.copy(), self._bg_depth.copy()
        bx, by, bw, bh = cv2.boundingRect(head)
        if bw == 0:
            return out_rgb, out_depth
        # Only the box the moved head can cover is warped (a whole VGA frame would cost 3x more).
        corners = np.array([[bx - 2, by - 2, 1], [bx + bw + 2, by - 2, 1], [bx - 2, by + bh + 2, 1],
                            [bx + bw + 2, by + bh + 2, 1]], dtype=np.float64) @ m.T
        ox0, oy0 = (max(0, int(math.floor(v))) for v in corners.min(axis=0))
        ox1 = min(self.width, int(math.ceil(corners[:, 0].max())) + 1)
        oy1 = min(self.height, int(math.ceil(corners[:, 1].max())) + 1)
        if ox1 <= ox0 or oy1 <= oy0:
            return out_rgb, out_depth
        m_roi = m - np.array([[0.0, 0.0, ox0], [0.0, 0.0, oy0]])
        size = (ox1 - ox0, oy1 - oy0)
        # A 3x3 box filter turns the binary head mask into an anti-aliased coverage ramp.
        src = cv2.merge((rgb, cv2.blur(head, (3, 3))))
        warped = cv2.warpAffine(src, m_roi, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                borderValue=(0, 0, 0, 0))
        _blend_mask(out_rgb[oy0:oy1, ox0:ox1], cv2.cvtColor(warped, cv2.COLOR_RGBA2RGB),
                    cv2.extractChannel(warped, 3))
        moved = cv2.warpAffine(depth, m_roi, size, flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                               borderValue=bg_mm)
        shifted = np.clip(moved.astype(np.int32) + int(round(z_mm)), 1, bg_mm - 1).astype(np.uint16)
        out_depth[oy0:oy1, ox0:ox1] = np.where(moved < bg_mm, shifted, out_depth[oy0:oy1, ox0:ox1])
        return out_rgb, out_depth

    def _build_shell_radius(self) -> np.ndarray:
        """Distance (px) from the head centre to the skull outline, per direction, as an image.

        Sampling it at any canonical point gives the outline radius in that point's direction, which
        lets :meth:`_apply_pose` intersect rays with the side shell in closed form.
        """
        x0, y0, x1, y1 = self._head_box
        hcx, hcy = self._cx - x0, self._cy + self._head_centre_y * self._ppm - y0
        n_ang = 720
        ang = np.linspace(-math.pi, math.pi, n_ang, endpoint=False)
        r_max = float(np.hypot(max(hcx, x1 - x0 - hcx), max(hcy, y1 - y0 - hcy)))
        radii = np.arange(0.0, r_max, 0.5)
        mx = (hcx + np.cos(ang)[:, None] * radii[None, :]).astype(np.float32)
        my = (hcy + np.sin(ang)[:, None] * radii[None, :]).astype(np.float32)
        inside = cv2.remap(self._skull_alpha, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                           borderValue=0) >= 128
        # Outline radius: where the skull coverage ends for the first time going outwards.
        first_out = np.argmin(np.concatenate([inside, np.zeros((n_ang, 1), bool)], axis=1), axis=1)
        rad = np.maximum(radii[np.clip(first_out, 0, len(radii) - 1)], 1.0)
        rad = np.convolve(np.concatenate([rad[-3:], rad, rad[:3]]), np.ones(7) / 7.0, mode="valid")
        # Image of the radius over the head box plus a margin, so rays landing outside still find it. It
        # varies slowly, so a coarse grid (at most ~512 px a side) is enough at any frame size.
        pad = int(0.5 * max(x1 - x0, y1 - y0))
        scale = min(1.0, 512.0 / (max(x1 - x0, y1 - y0) + 2 * pad))
        ny, nx = int(math.ceil((y1 - y0 + 2 * pad) * scale)), int(math.ceil((x1 - x0 + 2 * pad) * scale))
        yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32) / np.float32(scale)
        theta = np.arctan2(yy - pad - hcy, xx - pad - hcx)
        idx = (theta + math.pi) * (n_ang / (2 * math.pi))
        i0 = np.floor(idx).astype(np.int64) % n_ang
        f = idx - np.floor(idx)
        self._shell_pad = pad
        self._shell_scale = scale
        return (rad[i0] * (1 - f) + rad[(i0 + 1) % n_ang] * f).astype(np.float32)

    def _march(self, z_src: np.ndarray, plane_x: np.ndarray, plane_y: np.ndarray, vx: np.float32,
               vy: np.float32) -> np.ndarray:
        """First crossing of rays ``p(t) = plane + v t`` with the height field ``z_src``.

        ``t`` is canonical depth behind the silhouette plane (mm, negative = towards the camera).
        A coarse march from in front of the nose, on a half-resolution grid, brackets the first
        crossing, so a nose correctly hides the cheek behind it; regula falsi inside the bracket at full
        resolution then refines it. Rays that meet nothing end on the silhouette plane (t = 0).
        """
        f32 = np.float32
        z_rim = f32(self._z_rim)

        def gap(px: np.ndarray, py: np.ndarray, t: np.ndarray | np.float32) -> np.ndarray:
            h = cv2.remap(z_src, px + vx * t, py + vy * t, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=float(z_rim))
            return h - z_rim - t

        hx = np.ascontiguousarray(plane_x[::2, ::2])
        hy = np.ascontiguousarray(plane_y[::2, ::2])
        t0 = f32(self.face_distance_mm - 4.0 - self._z_rim)
        n_steps = int(math.ceil((_MARCH_END_MM - float(t0)) / _MARCH_STEP_MM))
        t_a = np.full(hx.shape, t0, f32)
        t_b = np.full(hx.shape, f32(_MARCH_END_MM), f32)
        g_a = np.full(hx.shape, f32(1.0), f32)
        g_b = np.full(hx.shape, f32(-1.0), f32)
        open_ = np.ones(hx.shape, bool)
        for k in range(n_steps + 1):
            t_k = f32(t0 + k * _MARCH_STEP_MM)
            g = gap(hx, hy, t_k)
            ahead = open_ & (g > 0)
            hit = open_ ^ ahead
            np.copyto(t_a, t_k, where=ahead)
            np.copyto(g_a, g, where=ahead)
            np.copyto(t_b, t_k, where=hit)
            np.copyto(g_b, g, where=hit)
            open_ = ahead
            if not open_.any():
                break
        # Each full-resolution ray inherits the bracket (and end gaps) of its half-resolution parent; one
        # regula-falsi step at full resolution and a final secant refine the crossing inside it.
        h, w = plane_x.shape
        t_a, t_b, g_a, g_b = (np.repeat(np.repeat(v, 2, axis=0), 2, axis=1)[:h, :w] for v in (t_a, t_b, g_a, g_b))
        for _ in range(1):
            t_m = t_a + (t_b - t_a) * np.clip(g_a / np.maximum(g_a - g_b, f32(1e-4)), 0.0, 1.0)
            g_m = gap(plane_x, plane_y, t_m)
            front = g_m > 0
            t_a = np.where(front, t_m, t_a)
            g_a = np.where(front, g_m, g_a)
            t_b = np.where(front, t_b, t_m)
            g_b = np.where(front, g_b, g_m)
        return t_a + (t_b - t_a) * np.clip(g_a / np.maximum(g_a - g_b, f32(1e-4)), 0.0, 1.0)

    def _apply_pose(self, rgb: np.ndarray, depth: np.ndarray, alpha: np.ndarray, rim: np.ndarray,
                    skull: np.ndarray, yaw: float, pitch: float, roll: float) -> tuple[np.ndarray, np.ndarray]:
        """Rotate the canonical head about a pivot near the neck by ray-marching its height field.

        The frontal rendering is a height field, so it cannot contain the sides of the head that a
        turned head reveals; rays missing it are intersected with a shell behind the outline plane
        (a half-ellipsoid whose cross-section is the skull outline shrunk towards the head centre)
        and coloured with the rim they continue. Without it a turned head shows a gap by the ear.
        """
        cy_, sy_ = math.cos(math.radians(yaw)), math.sin(math.radians(yaw))
        cp, sp = math.cos(math.radians(pitch)), math.sin(math.radians(pitch))
        cr, sr = math.cos(math.radians(roll)), math.sin(math.radians(roll))
        r_yaw = np.array([[cy_, 0.0, -sy_], [0.0, 1.0, 0.0], [sy_, 0.0, cy_]])
        r_pitch = np.array([[1.0, 0.0, 0.0], [0.0, cp, sp], [0.0, -sp, cp]])
        r_roll = np.array([[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]])
        rot = r_roll @ r_pitch @ r_yaw
        inv = rot.T
        piv = self._pivot
        x0, y0, x1, y1 = self._head_box
        ppm = self._ppm
        # Output box: the rotated corners of the head's bounding volume, whose front part (the face,
        # closer than the outline plane) is narrower than the outline itself.
        xs = (np.array([x0, x1]) - self._cx) / ppm
        ys = (np.array([y0, y1]) - self._cy) / ppm
        back = np.array(np.meshgrid(xs, ys, [self._z_rim - 20.0, self._z_rim + 15.0])).reshape(3, -1).T
        front = np.array(np.meshgrid(0.75 * xs, ys, [self.face_distance_mm - 5.0])).reshape(3, -1).T
        rc = (np.concatenate([back, front]) - piv) @ rot.T + piv
        ox0, oy0, ox1, oy1 = self._box_px(rc[:, 0].min(), rc[:, 0].max(), rc[:, 1].min(), rc[:, 1].max(), pad=2)
        out_rgb = self._bg_rgb.copy()
        out_depth = self._bg_depth.copy()
        if ox1 <= ox0 or oy1 <= oy0:
            return out_rgb, out_depth

        f32 = np.float32
        # Canonical position (head-box pixels) of each output ray where it crosses the outline plane
        # (canonical depth z_rim), and its canonical motion per millimetre of canonical depth.
        m22 = float(inv[2, 2])
        dxo = ((np.arange(ox0, ox1, dtype=f32) - self._cx) / ppm - float(piv[0]))[None, :]
        dyo = ((np.arange(oy0, oy1, dtype=f32) - self._cy) / ppm - float(piv[1]))[:, None]
        k = inv[:2, :2] - np.outer(inv[:2, 2], inv[2, :2]) / m22
        off = inv[:2, 2] * (self._z_rim - piv[2]) / m22
        px0 = f32(self._cx + (piv[0] + off[0]) * ppm - x0)
        py0 = f32(self._cy + (piv[1] + off[1]) * ppm - y0)
        plane_x = f32(k[0, 0] * ppm) * dxo + f32(k[0, 1] * ppm) * dyo + px0
        plane_y = f32(k[1, 0] * ppm) * dxo + f32(k[1, 1] * ppm) * dyo + py0
        # Camera depth of the ray where it crosses canonical depth z_rim, and its gain per canonical mm.
        cam_plane = f32(piv[2] + (self._z_rim - piv[2]) / m22) - (
            f32(inv[2, 0] / m22) * dxo + f32(inv[2, 1] / m22) * dyo
        )
        vx, vy = f32(inv[0, 2] / m22 * ppm), f32(inv[1, 2] / m22 * ppm)
        z_src = np.where(alpha >= 128, depth[y0:y1, x0:x1].astype(f32), f32(self._z_rim))
        t = self._march(z_src, plane_x, plane_y, vx, vy)
        src_rgb = rgb[y0:y1, x0:x1].copy()
        cv2.copyTo(rim, (alpha < 250).view(np.uint8), src_rgb)
        src = cv2.merge((src_rgb, alpha))
        # One fixed-point remap moves colour and coverage together (cheaper than separate float remaps).
        m1, m2 = cv2.convertMaps(plane_x + vx * t, plane_y + vy * t, cv2.CV_16SC2)
        warped = cv2.remap(src, m1, m2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        front = cv2.cvtColor(warped, cv2.COLOR_RGBA2RGB)
        # Where a turned head hides its own far side the mapping jumps from head to background between
        # neighbouring pixels, which leaves a hard, aliased outline; a 3x3 box filter restores a ramp.
        cov = cv2.blur(cv2.extractChannel(warped, 3), (3, 3))
        cam_z = cam_plane + t * f32(1.0 / m22)

        # Side shell: |q + v d|^2 / R^2 <= 1 - d^2 / D^2 for canonical depth d in [0, D], with q the
        # ray's plane crossing relative to the head centre and R the outline radius in its direction.
        pad = self._shell_pad
        hcx = f32(self._cx - x0)
        hcy = f32(self._cy + self._head_centre_y * ppm - y0)
        sc = f32(self._shell_scale)
        rad = cv2.remap(self._shell_radius, (plane_x + pad) * sc, (plane_y + pad) * sc, cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REPLICATE)
        qx = plane_x - hcx
        qy = plane_y - hcy
        inv_r2 = 1.0 / (rad * rad)
        big_d = f32(_BACK_DEPTH_MM)
        qa = f32(vx * vx + vy * vy) * inv_r2 + f32(1.0 / (_BACK_DEPTH_MM**2))
        qb = 2.0 * (qx * vx + qy * vy) * inv_r2
        qc = (qx * qx + qy * qy) * inv_r2 - 1.0
        d_min = np.clip(-qb / (2.0 * qa), 0.0, big_d)
        f_min = qc + d_min * (qb + qa * d_min)
        side_cov = np.clip(0.5 - f_min * rad * 0.5, 0.0, 1.0)
        disc = np.maximum(qb * qb - 4.0 * qa * qc, 0.0)
        d_hit = np.clip((-qb - np.sqrt(disc)) / (2.0 * qa), 0.0, d_min)
        side_z = cam_plane + d_hit * f32(1.0 / m22)
        # A ray that misses the face ends on the silhouette plane just outside the outline, where the
        # rim colour has been continued outwards, so ``front`` already holds the colour of the rim that
        # the shell continues.
        side_a = np.rint(side_cov * 255.0).astype(np.uint8)

        bg = out_rgb[oy0:oy1, ox0:ox1]
        _blend_mask(bg, front, side_a)
        _blend_mask(bg, front, cov)
        dep = out_depth[oy0:oy1, ox0:ox1]
        dep[...] = np.where(cov >= 128, np.rint(cam_z), np.where(side_a >= 128, np.rint(side_z), dep)).astype(
            np.uint16)
        return out_rgb, out_depth
