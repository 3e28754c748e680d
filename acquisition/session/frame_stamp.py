"""Frame-index stamps: a running frame number drawn into each video frame, and its reader.

A source that stamps its frames (the ``highspeed`` simulated rig) writes frame ``k``'s index
into a block of pixels in the top-left corner, so a dropped frame can be found in the file
itself, whatever the time stamps say. The stamp survives every lossless form the session
stores (raw, HDF5 filters, PNG) exactly, and JPEG too: it is grey (equal R, G, B, so chroma
subsampling cannot smear it), each bit is one 8x8 block aligned to JPEG's 8x8 grid and
either black or white, and it is read back by thresholding each block's mean.

Layout (:data:`STAMP_BITS` bits, row-major, :data:`STAMP_BLOCK_PX` pixels per bit):
32 bits of the index (most significant first), then :data:`CHECK_BITS` bits of the
bitwise complement of its low 16 bits. The check tells a stamped frame from any other
picture: :func:`read_frame_index` refuses a frame whose check does not match.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Side of one bit's block of pixels (the JPEG block size, so JPEG keeps each block flat).
STAMP_BLOCK_PX = 8
#: Bits of the frame index (enough for 248 days at 200 fps).
INDEX_BITS = 32
#: Bits of the check: the complement of the index's low 16 bits.
CHECK_BITS = 16
STAMP_BITS = INDEX_BITS + CHECK_BITS
#: Blocks per row of the stamp; the stamp covers ``STAMP_COLUMNS * 8`` x ``rows * 8`` pixels.
STAMP_COLUMNS = 16
STAMP_ROWS = STAMP_BITS // STAMP_COLUMNS
#: Size of the stamped corner in pixels, (height, width).
STAMP_SHAPE_PX = (STAMP_ROWS * STAMP_BLOCK_PX, STAMP_COLUMNS * STAMP_BLOCK_PX)
#: Value of the stream attribute (and LSL ``desc/frame_stamp``) naming this layout.
STAMP_LAYOUT = "emosync-binary-v1"


def _bits(indices: np.ndarray) -> np.ndarray:
    """Stamp bits of each index, shape (n, STAMP_ROWS, STAMP_COLUMNS), bool."""
    indices = np.asarray(indices, dtype=np.uint64).reshape(-1)
    index_bits = (indices[:, None] >> np.arange(INDEX_BITS - 1, -1, -1, dtype=np.uint64)) & 1
    check = ~indices & np.uint64(0xFFFF)
    check_bits = (check[:, None] >> np.arange(CHECK_BITS - 1, -1, -1, dtype=np.uint64)) & 1
    return np.concatenate([index_bits, check_bits], axis=1).astype(bool).reshape(-1, STAMP_ROWS, STAMP_COLUMNS)


def _check_frame_shape(shape: tuple[int, ...]) -> None:
    if len(shape) not in (2, 3) or shape[0] < STAMP_SHAPE_PX[0] or shape[1] < STAMP_SHAPE_PX[1]:
        raise ValueError(f"A frame-index stamp needs frames of at least {STAMP_SHAPE_PX[1]}x{STAMP_SHAPE_PX[0]} "
                         f"pixels, shaped (height, width[, 3]); got shape {shape}.")


def stamp_frame_index(frames: np.ndarray, indices: np.ndarray | int) -> np.ndarray:
    """Draw each frame's index into its top-left corner, in place.

    Parameters
    ----------
    frames : array of uint8, shape (n, height, width, 3) | (n, height, width)
        The frames (RGB or grey); at least 128 x 24 pixels. Modified in place.
    indices : array of int, shape (n,) | int
        The running frame index of each frame (0 <= index < 2**32).

    Returns
    -------
    frames : array
        The same array, stamped.
    """
    frames = np.asarray(frames)
    _check_frame_shape(frames.shape[1:])
    if frames.dtype != np.uint8:
        raise ValueError(f"Frame-index stamps are drawn into uint8 frames, got dtype {frames.dtype}.")
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    if indices.shape[0] != frames.shape[0]:
        raise ValueError(f"{frames.shape[0]} frames but {indices.shape[0]} indices.")
    if indices.size and (indices.min() < 0 or indices.max() >= 2**INDEX_BITS):
        raise ValueError(f"Frame indices must be in [0, 2**{INDEX_BITS}), got {indices.min()}..{indices.max()}.")
    pixels = np.where(_bits(indices), np.uint8(255), np.uint8(0))
    block = np.ones((STAMP_BLOCK_PX, STAMP_BLOCK_PX), dtype=np.uint8)
    corner = np.kron(pixels, block[None])  # (n, rows*8, columns*8)
    h, w = STAMP_SHAPE_PX
    if frames.ndim == 4:
        frames[:, :h, :w, :] = corner[..., None]
    else:
        frames[:, :h, :w] = corner
    return frames


def read_frame_indices(corners: np.ndarray) -> np.ndarray:
    """Read the stamps of many frames (or of their top-left corners).

    Parameters
    ----------
    corners : array of uint8, shape (n, height, width[, 3])
        Frames, or at least their top-left :data:`STAMP_SHAPE_PX` pixels.

    Returns
    -------
    indices : array of int64, shape (n,)
        Each frame's index, or -1 where a frame carries no valid stamp (its check does not match).
    """
    corners = np.asarray(corners)
    _check_frame_shape(corners.shape[1:])
    h, w = STAMP_SHAPE_PX
    grey = corners[:, :h, :w].astype(np.float32)
    if grey.ndim == 4:
        grey = grey.mean(axis=3)
    means = grey.reshape(-1, STAMP_ROWS, STAMP_BLOCK_PX, STAMP_COLUMNS, STAMP_BLOCK_PX).mean(axis=(2, 4))
    bits = (means > 127.5).reshape(-1, STAMP_BITS).astype(np.uint64)
    index = (bits[:, :INDEX_BITS] << np.arange(INDEX_BITS - 1, -1, -1, dtype=np.uint64)).sum(axis=1)
    check = (bits[:, INDEX_BITS:] << np.arange(CHECK_BITS - 1, -1, -1, dtype=np.uint64)).sum(axis=1)
    valid = check == (~index & np.uint64(0xFFFF))
    return np.where(valid, index.astype(np.int64), -1)


def read_frame_index(frame: np.ndarray) -> int:
    """The running frame index stamped into one frame (see :func:`stamp_frame_index`).

    Parameters
    ----------
    frame : array of uint8, shape (height, width, 3) | (height, width)
        A stamped frame, as read from a session (``stream.data[k]``).

    Returns
    -------
    index : int
        The frame's index at the source (0 for its first frame).

    Raises
    ------
    ValueError
        If the frame carries no valid stamp (the check bits do not match): it was not stamped
        by an emosync source, or the corner was altered.
    """
    index = int(read_frame_indices(np.asarray(frame)[None])[0])
    if index < 0:
        raise ValueError("This frame carries no valid frame-index stamp (its check bits do not match). Only "
                         f"sources that stamp frames ('{STAMP_LAYOUT}', e.g. the highspeed simulated rig) have one.")
    return index


def is_stamped(info: dict[str, Any]) -> bool:
    """True if a stream's metadata (``Stream.info``) says its frames carry frame-index stamps."""
    if info.get("frame_stamp") == STAMP_LAYOUT:
        return True
    return f"<frame_stamp>{STAMP_LAYOUT}</frame_stamp>" in str(info.get("info_xml", ""))


def stream_frame_indices(stream: Any, *, batch: int = 256) -> np.ndarray:
    """The stamped index of every frame of a video stream (a :class:`~acquisition.session.reader.Stream`).

    Only each frame's stamped corner is read where the storage allows it (raw frames); filtered
    frames are decompressed and PNG/JPEG frames decoded whole, ``batch`` frames at a time.

    Returns
    -------
    indices : array of int64, shape (n_samples,)
        As :func:`read_frame_indices` (-1 for a frame without a valid stamp).
    """
    h, w = STAMP_SHAPE_PX
    n = stream.n_samples
    out = np.empty(n, dtype=np.int64)
    for start in range(0, n, batch):
        stop = min(n, start + batch)
        out[start:stop] = read_frame_indices(stream.data[start:stop, :h, :w])
    return out


def frame_drop_report(indices: np.ndarray) -> dict[str, Any]:
    """Dropped, repeated and unreadable frames from the stamped indices of a recording, in file order.

    Parameters
    ----------
    indices : array of int, shape (n_frames,)
        As :func:`read_frame_indices` returns them (-1 for an unreadable stamp).

    Returns
    -------
    report : dict
        ``n_frames``; ``first_index`` and ``last_index`` (stamps of the first and last readable
        frames); ``dropped_frames`` (indices missing between them); ``gaps`` (list of
        ``{"after_frame": position in the file, "missing": count}``, the first 20);
        ``repeated_or_backwards`` (frames whose index is not above the previous one);
        ``unreadable`` (frames without a valid stamp).
    """
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    readable = np.flatnonzero(indices >= 0)
    report: dict[str, Any] = {"n_frames": int(indices.size), "unreadable": int(indices.size - readable.size),
                              "first_index": None, "last_index": None, "dropped_frames": 0, "gaps": [],
                              "repeated_or_backwards": 0}
    if readable.size == 0:
        return report
    values = indices[readable]
    step = np.diff(values)
    report.update(first_index=int(values[0]), last_index=int(values[-1]),
                  dropped_frames=int(np.sum(step[step > 1] - 1)), repeated_or_backwards=int(np.sum(step < 1)))
    report["gaps"] = [{"after_frame": int(readable[i]), "missing": int(step[i] - 1)}
                      for i in np.flatnonzero(step > 1)[:20]]
    return report


__all__ = ["STAMP_LAYOUT", "STAMP_SHAPE_PX", "frame_drop_report", "is_stamped", "read_frame_index",
           "read_frame_indices", "stamp_frame_index", "stream_frame_indices"]
