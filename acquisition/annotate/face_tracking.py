"""Face tracking on recorded video: MediaPipe Face Landmarker -> derived session streams.

``emosync annotate`` (:func:`annotate_session`) runs Google's MediaPipe Face Landmarker
(Tasks API, VIDEO running mode) over an RGB stream of a closed session and appends
derived streams with exactly the video's time stamps and clock offsets, so their
synchronized ``times`` equal the video's and every downstream consumer (fusion, synth,
plots) can align them without resampling:

``<video>-Landmarks``   478 x (x, y, z), 1434 float32 channels, normalized image coordinates
``<video>-Blendshapes`` the 52 ARKit-style blendshape scores, 0-1
``<video>-HeadPose``    yaw, pitch, roll (degrees) and translation (cm) from the transformation matrix
``<video>-FaceBox``     x0, y0, x1, y1 in pixels (landmark extent)
``<video>-AU``          FACS Action Units on the 0-5 scale, mapped from blendshapes (type ActionUnits)
``<video>-FaceCrop``    112x112 RGB8 crops, eyes level (zeros without a face)
``<video>-FaceValid``   1 where a face was found, 0 where not

Frames without a face get NaN rows (never dropped rows); a video in which no frame shows a
face is annotated all the same (NaN rows, exit status 0) and ends with a warning that says so.
The streams are written with :meth:`SessionWriter.replace_derived
<acquisition.session.writer.SessionWriter.replace_derived>`, so a failed or interrupted run
leaves the session as it was, earlier results included. MediaPipe's native log lines are
kept off the terminal (:mod:`.native_stderr`) unless the log level is DEBUG. The pure pieces
(blendshapes to AUs, head pose from a matrix, aligned crops) are separate functions so that
tests and other modules can use them without a session. See ``docs/faces.md``.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from acquisition.annotate.action_units import AU_IDS
from acquisition.annotate.action_units import AU_LABELS as VOCABULARY_LABELS
from acquisition.annotate.face_model import face_model_sha256, find_face_model
from acquisition.annotate.native_stderr import native_stderr_to_log
from acquisition.session.format import StreamSpec
from acquisition.session.writer import DerivedStreams, SessionWriter, StreamWriter
from acquisition.sync.clock import ClockOffsetTable
from acquisition.utils.docs import add_doc, fill_doc
from acquisition.utils.logs import logger, verbose

#: MediaPipe's 52 blendshape categories in the order the model outputs them (index 0 is ``_neutral``).
BLENDSHAPE_NAMES: tuple[str, ...] = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft",
    "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft",
    "eyeLookUpRight", "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft",
    "jawOpen", "jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft",
    "mouthPressRight", "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower",
    "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthUpperUpLeft", "mouthUpperUpRight", "noseSneerLeft", "noseSneerRight",
)
_BS_INDEX = {name: i for i, name in enumerate(BLENDSHAPE_NAMES)}
N_LANDMARKS = 478

#: AU -> (blendshapes averaged, gain). ``AU = clip(gain * mean(scores), 0, 5)``. One table so the
#: scale is visible and tunable in one place; docs/faces.md explains each row. AU25 is special:
#: lips apart = ``jawOpen - mouthClose`` (mouthClose is the lips held together while the jaw opens).
#: Keys are AUs of the vocabulary (:data:`acquisition.annotate.action_units.AU_IDS`).
AU_BLENDSHAPE_MAP: dict[int, tuple[tuple[str, ...], float]] = {
    1: (("browInnerUp",), 5.0),
    2: (("browOuterUpLeft", "browOuterUpRight"), 5.0),
    4: (("browDownLeft", "browDownRight"), 5.0),
    5: (("eyeWideLeft", "eyeWideRight"), 5.0),
    6: (("cheekSquintLeft", "cheekSquintRight"), 5.0),
    7: (("eyeSquintLeft", "eyeSquintRight"), 5.0),
    9: (("noseSneerLeft", "noseSneerRight"), 5.0),
    10: (("mouthUpperUpLeft", "mouthUpperUpRight"), 5.0),
    12: (("mouthSmileLeft", "mouthSmileRight"), 5.0),
    14: (("mouthDimpleLeft", "mouthDimpleRight"), 5.0),
    15: (("mouthFrownLeft", "mouthFrownRight"), 5.0),
    17: (("mouthShrugLower",), 5.0),
    20: (("mouthStretchLeft", "mouthStretchRight"), 5.0),
    23: (("mouthPressLeft", "mouthPressRight"), 5.0),
    25: (("jawOpen", "-mouthClose"), 10.0),
    26: (("jawOpen",), 5.0),
    45: (("eyeBlinkLeft", "eyeBlinkRight"), 5.0),
}
#: The AUs face tracking estimates: the vocabulary's AUs that :data:`AU_BLENDSHAPE_MAP` maps, in the
#: vocabulary's order. Blendshapes show all 17 today, so ``<video>-AU`` has the same columns as
#: every other AU array; a vocabulary AU without blendshapes would be left out here (a documented subset).
ESTIMATED_AUS: tuple[int, ...] = tuple(au for au in AU_IDS if au in AU_BLENDSHAPE_MAP)
#: Channel labels of ``<video>-AU`` (``"AU01"``...), taken from the vocabulary.
AU_LABELS: tuple[str, ...] = tuple(VOCABULARY_LABELS[AU_IDS.index(au)] for au in ESTIMATED_AUS)
HEAD_POSE_LABELS = ("yaw_deg", "pitch_deg", "roll_deg", "tx_cm", "ty_cm", "tz_cm")
FACE_BOX_LABELS = ("x0_px", "y0_px", "x1_px", "y1_px")
#: Side of the aligned face crops in pixels, and where features land in them.
CROP_SIZE = 112
#: Inter-ocular distance (eye centres) in the crop, pixels; about the ArcFace 112x112 template's.
CROP_EYE_DISTANCE_PX = 36.0
#: Landmark indices (MediaPipe face mesh): eye corners of the subject's right / left eye, mouth corners.
_RIGHT_EYE = (33, 133)
_LEFT_EYE = (362, 263)
_MOUTH = (61, 291)
DERIVED_KINDS = ("Landmarks", "Blendshapes", "HeadPose", "FaceBox", "AU", "FaceCrop", "FaceValid")
DERIVED_BY = "emosync annotate"


@dataclass
class Face:
    """One face found in one frame.

    Attributes
    ----------
    landmarks : array, shape (478, 3)
        x, y normalized to [0, 1] by image width and height, z relative depth (same scale as x,
        origin at the head's centre, smaller = closer to the camera), as MediaPipe returns them.
    blendshapes : array, shape (52,)
        Scores 0-1 in :data:`BLENDSHAPE_NAMES` order.
    matrix : array, shape (4, 4)
        MediaPipe's facial transformation matrix (canonical face model -> camera, cm).
    box : array, shape (4,)
        x0, y0, x1, y1 in pixels (extent of the landmarks).
    """

    landmarks: np.ndarray
    blendshapes: np.ndarray
    matrix: np.ndarray
    box: np.ndarray

    @property
    def area(self) -> float:
        """Box area in square pixels."""
        return float(max(self.box[2] - self.box[0], 0) * max(self.box[3] - self.box[1], 0))


# --------------------------------------------------------------------------- pure mappings
def blendshapes_to_aus(blendshapes: np.ndarray) -> np.ndarray:
    """Map blendshape scores to FACS AU intensities with :data:`AU_BLENDSHAPE_MAP`.

    Parameters
    ----------
    blendshapes : array, shape (..., 52)
        Scores 0-1 in :data:`BLENDSHAPE_NAMES` order; NaN rows stay NaN.

    Returns
    -------
    aus : array of float32, shape (..., n_aus)
        Intensities 0-5, one column per AU of :data:`ESTIMATED_AUS`, named as in :data:`AU_LABELS`.
    """
    bs = np.asarray(blendshapes, dtype=np.float64)
    out = np.empty((*bs.shape[:-1], len(ESTIMATED_AUS)), dtype=np.float64)
    for k, au in enumerate(ESTIMATED_AUS):
        names, gain = AU_BLENDSHAPE_MAP[au]
        positive = [bs[..., _BS_INDEX[n]] for n in names if not n.startswith("-")]
        value = np.mean(positive, axis=0)
        for n in names:
            if n.startswith("-"):
                value = value - bs[..., _BS_INDEX[n[1:]]]
        out[..., k] = np.clip(gain * value, 0.0, 5.0)  # clip keeps NaN
    return out.astype(np.float32)


def head_pose_from_matrix(matrix: np.ndarray) -> np.ndarray:
    """Yaw, pitch, roll (degrees) and translation from a facial transformation matrix.

    The rotation is decomposed as ``R = Ry(a) @ Rx(b) @ Rz(c)`` (yaw about the vertical
    axis, then pitch, then roll) in MediaPipe's camera frame (x right, y up, z towards
    the viewer), then signed like the simulated rig's renderer: positive yaw turns the
    face towards the image right, positive pitch lifts the chin, positive roll rotates
    the head clockwise in the image.

    Parameters
    ----------
    matrix : array, shape (4, 4)
        Canonical face model -> camera transform (MediaPipe, centimetres).

    Returns
    -------
    pose : array of float32, shape (6,)
        yaw_deg, pitch_deg, roll_deg, tx_cm, ty_cm, tz_cm (tz negative: in front of the camera).
    """
    m = np.asarray(matrix, dtype=np.float64)
    if not np.all(np.isfinite(m)):
        return np.full(6, np.nan, dtype=np.float32)
    r = m[:3, :3] / np.cbrt(max(abs(np.linalg.det(m[:3, :3])), 1e-12))  # remove any uniform scale
    pitch = np.degrees(np.arcsin(np.clip(-r[1, 2], -1.0, 1.0)))
    yaw = np.degrees(np.arctan2(r[0, 2], r[2, 2]))
    roll = np.degrees(np.arctan2(r[1, 0], r[1, 1]))
    # Sign choices checked against synth.rig.face.FaceRenderer (tests/acquisition/annotate/test_face_tracking.py).
    return np.array([yaw, -pitch, -roll, *m[:3, 3]], dtype=np.float32)


def align_face_crop(frame: np.ndarray, landmarks: np.ndarray | None, size: int = CROP_SIZE) -> np.ndarray:
    """Cut an eyes-level, scale-normalized face crop from a frame.

    The image is rotated by the eye-line angle, scaled so that the eye centres are
    :data:`CROP_EYE_DISTANCE_PX` * ``size`` / 112 apart, and centred on the midpoint between
    the eye centres and the mouth centre.

    Parameters
    ----------
    frame : array, shape (height, width, 3)
        uint8 RGB frame.
    landmarks : array, shape (478, 3) | None
        Normalized landmarks of the face; None or NaN gives an all-zero crop.
    size : int
        Crop side in pixels.

    Returns
    -------
    crop : array of uint8, shape (size, size, 3)
    """
    if landmarks is None or not np.all(np.isfinite(landmarks[:, :2])):
        return np.zeros((size, size, 3), dtype=np.uint8)
    h, w = frame.shape[:2]
    pts = landmarks[:, :2].astype(np.float64) * (w, h)
    right_eye = pts[list(_RIGHT_EYE)].mean(axis=0)   # image left
    left_eye = pts[list(_LEFT_EYE)].mean(axis=0)     # image right
    mouth = pts[list(_MOUTH)].mean(axis=0)
    eye_mid = (right_eye + left_eye) / 2
    dx, dy = left_eye - right_eye
    distance = float(np.hypot(dx, dy))
    if distance < 1e-3:
        return np.zeros((size, size, 3), dtype=np.uint8)
    angle = np.degrees(np.arctan2(dy, dx))
    scale = CROP_EYE_DISTANCE_PX * size / CROP_SIZE / distance
    centre = (eye_mid + mouth) / 2
    rot = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), float(angle), float(scale))
    rot[:, 2] += (size / 2 - centre[0], size / 2 - centre[1])
    return cv2.warpAffine(np.ascontiguousarray(frame), rot, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


# --------------------------------------------------------------------------- MediaPipe
add_doc("face_model", """
model : path-like | None
    Face Landmarker model file; None uses ``$EMOSYNC_FACE_LANDMARKER``, else the model bundled
    with emosync (see :func:`acquisition.annotate.face_model.find_face_model`).
""")
add_doc("min_confidence", """
min_confidence : float
    MediaPipe's face detection and presence thresholds (0-1, default 0.5). Lower finds small or
    distant faces (group photos: 2 of 5 faces at 0.5, 3-4 at 0.3 on ``multi_face.jpg``) at the cost
    of false detections.
""")


@contextmanager
def _open_landmarker(model_path: Path, *, video: bool, num_faces: int,
                     min_confidence: float = 0.5) -> Iterator[Any]:
    """A Face Landmarker, created and closed with its native log lines sent to the logger."""
    with native_stderr_to_log("mediapipe"):
        from mediapipe.tasks.python import BaseOptions, vision

        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(model_path)),
            running_mode=vision.RunningMode.VIDEO if video else vision.RunningMode.IMAGE,
            num_faces=num_faces, min_face_detection_confidence=min_confidence,
            min_face_presence_confidence=min_confidence, output_face_blendshapes=True,
            output_facial_transformation_matrixes=True)
        landmarker = vision.FaceLandmarker.create_from_options(options)
    try:
        yield landmarker
    finally:
        with native_stderr_to_log("mediapipe"):
            landmarker.close()


def _faces_from_result(result: Any, width: int, height: int) -> list[Face]:
    faces = []
    for i, points in enumerate(result.face_landmarks):
        lm = np.array([(p.x, p.y, p.z) for p in points], dtype=np.float32)
        bs = np.full(len(BLENDSHAPE_NAMES), np.nan, dtype=np.float32)
        if i < len(result.face_blendshapes):
            for c in result.face_blendshapes[i]:
                if c.category_name in _BS_INDEX:  # by name, in case a model orders them differently
                    bs[_BS_INDEX[c.category_name]] = c.score
        matrix = (np.asarray(result.facial_transformation_matrixes[i], dtype=np.float64)
                  if i < len(result.facial_transformation_matrixes) else np.full((4, 4), np.nan))
        box = np.array([lm[:, 0].min() * width, lm[:, 1].min() * height,
                        lm[:, 0].max() * width, lm[:, 1].max() * height], dtype=np.float32)
        faces.append(Face(lm, bs, matrix, box))
    return faces


def _mp_image(frame: np.ndarray) -> Any:
    import mediapipe as mp

    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"Expected an RGB uint8 frame of shape (height, width, 3), got {frame.shape} {frame.dtype}.")
    return mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(frame))


@fill_doc
def detect_faces(image: np.ndarray, *, model: str | os.PathLike | None = None, max_faces: int = 10,
                 min_confidence: float = 0.5) -> list[Face]:
    """Find faces in one RGB image (MediaPipe IMAGE mode), largest first.

    Parameters
    ----------
    image : array, shape (height, width, 3)
        uint8 RGB image (convert OpenCV's BGR first).
    %(face_model)s
    max_faces : int
        Most faces to return.
    %(min_confidence)s

    Returns
    -------
    faces : list of Face
    """
    model_path = find_face_model(model)
    with _open_landmarker(model_path, video=False, num_faces=max_faces,
                          min_confidence=min_confidence) as landmarker:
        result = landmarker.detect(_mp_image(image))
    faces = _faces_from_result(result, image.shape[1], image.shape[0])
    return sorted(faces, key=lambda f: -f.area)


@fill_doc
def track_frames(frames: Iterator[np.ndarray], timestamps_s: Sequence[float] | np.ndarray, *,
                 model: str | os.PathLike | None = None, max_faces: int = 4,
                 min_confidence: float = 0.5) -> Iterator[list[Face]]:
    """Run the Face Landmarker in VIDEO mode over frames, yielding the faces of each frame.

    Parameters
    ----------
    frames : iterable of array, shape (height, width, 3)
        uint8 RGB frames in time order.
    timestamps_s : array of float, shape (n_frames,)
        Frame times in seconds (any epoch); converted to strictly increasing milliseconds
        as MediaPipe's VIDEO mode requires.
    %(face_model)s
    max_faces : int
        ``num_faces`` of the landmarker.
    %(min_confidence)s

    Yields
    ------
    faces : list of Face
        In MediaPipe's order (possibly empty).
    """
    stamps = np.asarray(timestamps_s, dtype=np.float64)
    ms = _video_ms(stamps)
    with _open_landmarker(find_face_model(model), video=True, num_faces=max_faces,
                          min_confidence=min_confidence) as landmarker:
        for frame, t in zip(frames, ms):
            result = landmarker.detect_for_video(_mp_image(frame), int(t))
            yield _faces_from_result(result, frame.shape[1], frame.shape[0])


def _video_ms(stamps: np.ndarray) -> np.ndarray:
    if stamps.size == 0:
        return np.zeros(0, dtype=np.int64)
    ms = np.round((stamps - stamps[0]) * 1000.0).astype(np.int64)
    # VIDEO mode rejects equal or decreasing stamps; jittered camera stamps can collide after rounding.
    return np.maximum.accumulate(ms - np.arange(ms.size)) + np.arange(ms.size)


class _FaceSlots:
    """Keep face identities across frames: greedy best-IoU matching to each slot's last box."""

    def __init__(self, n_slots: int) -> None:
        self.last_box: list[np.ndarray | None] = [None] * n_slots

    def assign(self, faces: list[Face]) -> list[Face | None]:
        slots: list[Face | None] = [None] * len(self.last_box)
        pairs = sorted(((_iou(f.box, b), i, s) for i, f in enumerate(faces)
                        for s, b in enumerate(self.last_box) if b is not None), reverse=True)
        used_f, used_s = set(), set()
        for iou, i, s in pairs:
            if iou > 0.1 and i not in used_f and s not in used_s:
                slots[s] = faces[i]
                used_f.add(i)
                used_s.add(s)
        for i in sorted(set(range(len(faces))) - used_f, key=lambda i: -faces[i].area):
            # New faces take a never-used slot first, then the slot whose face was lost.
            free = [s for s in range(len(slots)) if s not in used_s and self.last_box[s] is None]
            free = free or [s for s in range(len(slots)) if s not in used_s]
            if free:
                slots[free[0]] = faces[i]
                used_s.add(free[0])
        for s, face in enumerate(slots):
            if face is not None:
                self.last_box[s] = face.box
        return slots


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


# --------------------------------------------------------------------------- sessions
def derived_stream_names(video: str, face_prefix: str = "") -> list[str]:
    """Names of the streams annotate writes for ``video`` (``face_prefix`` e.g. ``"Face1-"``)."""
    return [f"{video}-{face_prefix}{kind}" for kind in DERIVED_KINDS]


def pick_video_stream(session: Any, stream: str | None = None) -> str:
    """The RGB stream to annotate: ``stream`` if given, else the first RGB stream.

    Raises
    ------
    ValueError
        If the named stream is missing or not RGB, or the session has no RGB stream;
        the message lists the session's streams.
    """
    listing = ", ".join(f"{n} ({s.modality})" for n, s in session.streams.items()) or "none"
    rgb = [n for n, s in session.streams.items() if s.modality == "rgb"
           and s.info.get("derived_by") != DERIVED_BY]
    if stream is not None:
        if stream not in session.streams:
            raise ValueError(f"{session.fname} has no stream {stream!r}. Streams: {listing}.")
        if session.streams[stream].modality != "rgb":
            raise ValueError(f"Stream {stream!r} is not an RGB video stream (modality "
                             f"{session.streams[stream].modality!r}). Streams: {listing}.")
        return stream
    if not rgb:
        raise ValueError(f"{session.fname} has no RGB video stream to annotate. Streams: {listing}.")
    if len(rgb) > 1:
        logger.info("Several RGB streams (%s); annotating %r (choose with --stream).", ", ".join(rgb), rgb[0])
    return rgb[0]


@dataclass
class _VideoSource:
    """What annotate needs of the video stream, read once before the session is opened for writing."""

    name: str
    n_frames: int
    timestamps: np.ndarray
    clock_offsets: ClockOffsetTable
    nominal_srate: float
    info: dict[str, Any]
    #: Derived streams an earlier annotate wrote for this video.
    earlier: list[str]
    #: Every stream of the session.
    all_streams: set[str]


def _read_source(fname: Path, stream: str | None) -> _VideoSource:
    """Pick the video stream and read its time stamps, clock offsets and metadata."""
    from acquisition.session.reader import open_session

    with open_session(fname) as session:
        name = pick_video_stream(session, stream)
        video = session.streams[name]
        earlier = [n for n, s in session.streams.items()
                   if s.info.get("derived_by") == DERIVED_BY and s.info.get("derived_from") == name]
        return _VideoSource(name, video.n_samples, np.asarray(video.timestamps), video.clock_offsets,
                            video.nominal_srate, dict(video.info), earlier, set(session.streams))


def _check_outputs(fname: Path, source: _VideoSource, prefixes: Sequence[str], overwrite: bool) -> list[str]:
    """The earlier derived streams to replace; raises if they may not be replaced or a name is taken."""
    if source.earlier and not overwrite:
        raise FileExistsError(
            f"{fname} already has face-tracking streams of {source.name!r}: {', '.join(source.earlier)}. "
            "Pass --overwrite (overwrite=True) to replace them, or annotate a copy.")
    clash = [s for p in prefixes for s in derived_stream_names(source.name, p)
             if s in source.all_streams and s not in source.earlier]
    if clash:
        raise ValueError(f"{fname} already has streams named {clash} that annotate did not write; "
                         "rename them before annotating.")
    if source.earlier:
        logger.info("Replacing %d earlier derived streams of %r once the new ones are written",
                    len(source.earlier), source.name)
    return source.earlier


def _specs(source: _VideoSource, prefix: str, extra: dict[str, Any]) -> dict[str, StreamSpec]:
    """The derived streams of one face slot, with the video's rate, host and frame compression."""
    compression = str(source.info.get("compression", "none"))
    base = dict(nominal_srate=source.nominal_srate, hostname=str(source.info.get("hostname", "")),
                can_drop_samples=bool(source.info.get("can_drop_samples", False)))
    name = source.name
    src = str(source.info.get("source_id", "")) or name

    def spec(kind: str, stype: str, labels: Sequence[str], fmt: str = "float32", **kw: Any) -> StreamSpec:
        n = f"{name}-{prefix}{kind}"
        return StreamSpec(n, stype, kw.pop("channel_count", len(labels)), fmt, source_id=f"{src}-{prefix}{kind}",
                          channel_labels=list(labels), extra={**extra, "derived_kind": kind}, **base, **kw)

    lm_labels = [f"lm{i:03d}_{a}" for i in range(N_LANDMARKS) for a in "xyz"]
    return {
        "Landmarks": spec("Landmarks", "FaceLandmarks", lm_labels,
                          channel_units=["normalized"] * len(lm_labels)),
        "Blendshapes": spec("Blendshapes", "FaceBlendshapes", BLENDSHAPE_NAMES,
                            channel_units=["score 0-1"] * len(BLENDSHAPE_NAMES)),
        "HeadPose": spec("HeadPose", "HeadPose", HEAD_POSE_LABELS, channel_units=["deg"] * 3 + ["cm"] * 3),
        "FaceBox": spec("FaceBox", "FaceBox", FACE_BOX_LABELS, channel_units=["px"] * 4),
        "AU": spec("AU", "ActionUnits", AU_LABELS, channel_units=["FACS intensity 0-5"] * len(AU_LABELS)),
        "FaceCrop": spec("FaceCrop", "VideoRaw", [], fmt="int8", channel_count=CROP_SIZE * CROP_SIZE * 3,
                         frame_shape=(CROP_SIZE, CROP_SIZE, 3), encoding="RGB8",
                         compression=compression if compression in ("png", "jpeg") else "none"),
        "FaceValid": spec("FaceValid", "FaceValid", ["face_found"], fmt="int8"),
    }


def _rows(face: Face | None, frame: np.ndarray) -> dict[str, np.ndarray]:
    if face is None:
        nan = np.float32(np.nan)
        return {"Landmarks": np.full(N_LANDMARKS * 3, nan, np.float32),
                "Blendshapes": np.full(len(BLENDSHAPE_NAMES), nan, np.float32),
                "HeadPose": np.full(6, nan, np.float32), "FaceBox": np.full(4, nan, np.float32),
                "AU": np.full(len(AU_LABELS), nan, np.float32),
                "FaceCrop": np.zeros((CROP_SIZE, CROP_SIZE, 3), np.uint8), "FaceValid": np.zeros(1, np.int8)}
    return {"Landmarks": face.landmarks.reshape(-1), "Blendshapes": face.blendshapes,
            "HeadPose": head_pose_from_matrix(face.matrix), "FaceBox": face.box,
            "AU": blendshapes_to_aus(face.blendshapes), "FaceCrop": align_face_crop(frame, face.landmarks),
            "FaceValid": np.ones(1, np.int8)}


class _ChunkBuffer:
    """Rows of every derived stream of every face slot, written one chunk of frames at a time."""

    def __init__(self, outputs: list[dict[str, StreamWriter]]) -> None:
        self.outputs = outputs
        self.rows: list[dict[str, list[np.ndarray]]] = [{kind: [] for kind in slot} for slot in outputs]

    def add(self, slot: int, rows: dict[str, np.ndarray]) -> None:
        for kind, row in rows.items():
            self.rows[slot][kind].append(row)

    def write(self, timestamps: np.ndarray) -> None:
        for rows, writers in zip(self.rows, self.outputs):
            for kind, writer in writers.items():
                writer.append(np.stack(rows[kind]), timestamps)
                rows[kind].clear()


def _slot_outputs(new: DerivedStreams, source: _VideoSource, prefixes: Sequence[str]) -> list[dict[str, StreamWriter]]:
    """The writers of each face slot, by kind, with the video's clock offsets copied (same clock, same times)."""
    offsets = source.clock_offsets
    outputs = []
    for prefix in prefixes:
        slot = {kind: new[f"{source.name}-{prefix}{kind}"] for kind in DERIVED_KINDS}
        if offsets.offsets.size:
            for writer in slot.values():
                writer.append_clock_offsets(offsets.collection_times, offsets.offsets, offsets.uncertainties)
        outputs.append(slot)
    return outputs


def _decoded_frames(video: Any, n_frames: int, chunk_frames: int) -> Iterator[np.ndarray]:
    """The video's frames in order, read (and decoded) ``chunk_frames`` at a time."""
    for c0 in range(0, n_frames, chunk_frames):
        yield from video.data[c0:min(n_frames, c0 + chunk_frames)]


def _track_into(video: Any, source: _VideoSource, new: DerivedStreams, outputs: list[dict[str, StreamWriter]], *,
                all_faces: bool, model_path: Path, max_faces: int, min_confidence: float,
                chunk_frames: int) -> np.ndarray:
    """Track faces in every frame and write one row per frame and slot; returns found, shape (n_slots, n_frames)."""
    n = source.n_frames
    found = np.zeros((len(outputs), n), dtype=bool)
    buffer = _ChunkBuffer(outputs)
    slots = _FaceSlots(len(outputs))
    # tee: the tracker and the crop step see the same decoded frames, read once.
    for_tracker, for_crops = itertools.tee(_decoded_frames(video, n, chunk_frames))
    tracked = track_frames(for_tracker, source.timestamps, model=model_path, max_faces=max_faces,
                           min_confidence=min_confidence)
    i0 = 0
    for i, (faces, frame) in enumerate(zip(tracked, for_crops)):
        assigned = slots.assign(faces) if all_faces else [max(faces, key=lambda f: f.area) if faces else None]
        for s, face in enumerate(assigned):
            found[s, i] = face is not None
            buffer.add(s, _rows(face, frame))
        if i + 1 - i0 == chunk_frames or i + 1 == n:
            buffer.write(source.timestamps[i0:i + 1])
            new.flush()
            i0 = i + 1
            logger.debug("annotate: %d/%d frames", i0, n)
    return found


def _summary(source: _VideoSource, found: np.ndarray, written: list[str], model_path: Path, sha: str,
             elapsed_s: float) -> dict[str, Any]:
    """The summary :func:`annotate_session` returns."""
    n = source.n_frames
    any_face = found.any(axis=0)
    return {"stream": source.name, "n_frames": int(n), "n_frames_with_face": int(any_face.sum()),
            "detection_rate": float(any_face.mean()) if n else float("nan"),
            "faces_per_slot": [int(f.sum()) for f in found], "streams": written, "model": str(model_path),
            "model_sha256": sha, "fps": float(n / elapsed_s) if n and elapsed_s > 0 else float("nan")}


def _report(fname: Path, summary: dict[str, Any], min_confidence: float) -> None:
    """Log what was done; a video without any face ends with a plain warning."""
    name, n, with_face = summary["stream"], summary["n_frames"], summary["n_frames_with_face"]
    if n and not with_face:
        kept = (f"its derived streams ({', '.join(summary['streams'])}) hold NaN rows and FaceValid 0"
                if summary["streams"] else "no face slot was written")
        logger.warning(
            "No face was found in any of the %d frames of stream %r in %s; %s. Check that the video shows a "
            "face (lit, in focus, facing the camera, not tiny), or lower --min-confidence (min_confidence, now %g).",
            n, name, fname, kept, min_confidence)
        return
    if not n:
        logger.warning("Stream %r in %s has no frames; the derived streams are empty.", name, fname)
        return
    logger.info("Annotated %r: %d frames, face in %d (%.1f %%), %.1f frames/s; wrote %s", name, n, with_face,
                100 * summary["detection_rate"], summary["fps"], ", ".join(summary["streams"]))


@verbose
@fill_doc
def annotate_session(fname: str | os.PathLike, *, stream: str | None = None, all_faces: bool = False,
                     max_faces: int = 4, min_confidence: float = 0.5, model: str | os.PathLike | None = None,
                     overwrite: bool = False, chunk_frames: int = 64,
                     verbose: bool | str | int | None = None) -> dict[str, Any]:
    """Track faces in an RGB stream of a session and add the derived streams.

    Parameters
    ----------
    %(fname_analysis)s
    stream : str | None
        The RGB stream; None picks the first RGB stream.
    all_faces : bool
        False: one set of streams for the largest face in each frame. True: one set per
        tracked face, ``<video>-Face1-...``, ``<video>-Face2-...`` (slots kept by box overlap).
    max_faces : int
        MediaPipe's ``num_faces``: at most this many faces per frame are considered.
    %(min_confidence)s
    %(face_model)s
    overwrite : bool
        Replace this video's earlier derived streams (only those ``emosync annotate`` wrote),
        once the new ones are complete. Otherwise existing derived streams are an error.
    chunk_frames : int
        Frames read and written per chunk (memory use).
    %(verbose)s

    Returns
    -------
    summary : dict
        ``stream``, ``n_frames``, ``n_frames_with_face``, ``detection_rate``, ``faces_per_slot``,
        ``streams`` (written), ``model``, ``model_sha256``, ``fps`` (processing speed).

    Notes
    -----
    A video in which no frame shows a face is not an error: its streams are written (NaN rows,
    ``FaceValid`` 0; with ``all_faces`` no slot is written) and a warning says so. Check
    ``summary["n_frames_with_face"]`` to treat it as a failure.
    """
    from acquisition.session.reader import open_session

    fname = Path(fname)
    model_path = find_face_model(model)
    sha = face_model_sha256(model_path)
    source = _read_source(fname, stream)
    prefixes = [f"Face{k + 1}-" for k in range(max_faces)] if all_faces else [""]
    replace = _check_outputs(fname, source, prefixes, overwrite)
    extra = {"derived_from": source.name, "derived_by": DERIVED_BY, "model": str(model_path), "model_sha256": sha,
             "all_faces": bool(all_faces)}
    specs = [spec for p in prefixes for spec in _specs(source, p, extra).values()]
    # The session is only read while tracking; the new streams enter it when `new` commits, after
    # `session` is closed (HDF5 cannot open for writing a file this process holds read-only).
    with (SessionWriter.replace_derived(fname, specs, derived_by=DERIVED_BY, replace=replace) as new,
          open_session(fname) as session):
        outputs = _slot_outputs(new, source, prefixes)
        started = time.perf_counter()
        found = _track_into(session.streams[source.name], source, new, outputs, all_faces=all_faces,
                            model_path=model_path, max_faces=max_faces, min_confidence=min_confidence,
                            chunk_frames=chunk_frames)
        elapsed = time.perf_counter() - started
        if all_faces:
            # Slots that never held a face are noise; drop them so the session lists real faces only.
            new.discard([s for k, p in enumerate(prefixes) if not found[k].any()
                         for s in derived_stream_names(source.name, p)])
        written = new.names
    summary = _summary(source, found, written, model_path, sha, elapsed)
    _report(fname, summary, min_confidence)
    return summary
