"""Per-frame image compression for video streams (PNG lossless, JPEG for RGB only).

Frames are stored one encoded image per HDF5 element so any frame can be read
without its neighbours. OpenCV does the work; it releases the GIL, so encoding
runs in parallel in a thread pool, off the thread that receives the frames.
"""

from __future__ import annotations

import cv2
import numpy as np

#: JPEG quality used for RGB frames when ``compression="jpeg"``.
JPEG_QUALITY = 95


def encode_frame(frame: np.ndarray, compression: str) -> np.ndarray:
    """Encode one frame.

    Parameters
    ----------
    frame : array, shape (height, width, 3) uint8 RGB | (height, width) uint16 depth
        The frame to encode.
    compression : ``"png"`` | ``"jpeg"``
        The codec.

    Returns
    -------
    encoded : array of uint8, shape (n_bytes,)
        The encoded image, as stored in the session file.
    """
    if frame.ndim == 3:
        frame = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)  # image files hold BGR order
    if compression == "png":
        ok, buf = cv2.imencode(".png", frame, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    elif compression == "jpeg":
        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    else:
        raise ValueError(f"compression must be 'png' or 'jpeg', got {compression!r}")
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {frame.shape} {frame.dtype} frame as {compression}")
    return buf.reshape(-1)


def decode_frame(encoded: np.ndarray) -> np.ndarray:
    """Decode a frame written by :func:`encode_frame` (RGB order, uint16 depth kept)."""
    frame = cv2.imdecode(np.asarray(encoded, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if frame is None:
        raise ValueError("Stored frame could not be decoded: the bytes are not a PNG/JPEG image.")
    if frame.ndim == 3:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    return frame
