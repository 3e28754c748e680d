"""How video frames are stored: per-frame images (PNG, JPEG) and lossless HDF5 chunk filters.

Image forms store one encoded image per HDF5 element so any frame can be read without its
neighbours. OpenCV does the work; it releases the GIL, so encoding runs in parallel in a
thread pool, off the thread that receives the frames.

Filter forms (``lz4``, ``blosc2``) store raw frames, one frame per HDF5 chunk, through a
lossless filter from ``hdf5plugin``: HDF5 compresses each chunk as it is written, and any
reader that has imported ``hdf5plugin`` reads the frames as a plain array (the session reader
imports it when a stream needs it). ``hdf5plugin`` is imported only then, so recording
without a filter does not pay for it; OpenCV likewise only when an image is encoded or decoded
(its import costs about 0.1 s of CPU, which `emosync record` of raw or filtered video must not pay).
"""

from __future__ import annotations

from typing import Any

import h5py
import numpy as np

from acquisition.session.format import FILTER_COMPRESSIONS

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
    import cv2

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
    import cv2

    frame = cv2.imdecode(np.asarray(encoded, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if frame is None:
        raise ValueError("Stored frame could not be decoded: the bytes are not a PNG/JPEG image.")
    if frame.ndim == 3:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    return frame


def load_filters() -> Any:
    """Import ``hdf5plugin`` (which registers its HDF5 filters with HDF5) and return the module.

    Raises
    ------
    ImportError
        If ``hdf5plugin`` is not installed, with the command that installs it.
    """
    try:
        import hdf5plugin
    except ImportError:
        raise ImportError(
            "This video stream is stored through an HDF5 filter of hdf5plugin (lz4 or blosc2), which is not "
            "installed. Install it with: pip install hdf5plugin") from None
    return hdf5plugin


def filter_options(compression: str, itemsize: int = 1) -> dict[str, Any]:
    """Keyword arguments of ``h5py.Group.create_dataset`` for a filter form (``lz4`` or ``blosc2``).

    ``lz4`` is HDF5's registered LZ4 filter (id 32004). ``blosc2`` is Blosc2 (id 32026) with LZ4 at
    level 5, with byte-shuffle for multi-byte samples (uint16 depth) and no shuffle for uint8 RGB,
    where shuffling cannot help and bit-shuffle both slowed Blosc2 down and compressed worse (3.7x
    instead of 5.8x on the simulated face). Both are lossless; ``benchmarks/highspeed.py`` measures them.
    """
    if compression not in FILTER_COMPRESSIONS:
        raise ValueError(f"compression must be one of the HDF5 filter forms {FILTER_COMPRESSIONS}, "
                         f"got {compression!r}")
    hdf5plugin = load_filters()
    if compression == "lz4":
        return dict(hdf5plugin.LZ4())
    shuffle = hdf5plugin.Blosc2.SHUFFLE if itemsize > 1 else hdf5plugin.Blosc2.NOFILTER
    return dict(hdf5plugin.Blosc2(cname="lz4", clevel=5, filters=shuffle))


def open_frame_dataset(group: h5py.Group, name: str = "data") -> h5py.Dataset:
    """Open a stream's frame dataset without HDF5's chunk cache.

    A frame chunk (0.9 MB at 640x480 RGB) nearly fills HDF5's default 1 MiB cache, so cached I/O
    copies every frame twice (array -> cache -> file, and back); without the cache HDF5 writes and
    reads (or compresses and decompresses) each chunk straight from and into the caller's array:
    reading 200 raw VGA frames took 34 ms of CPU instead of 53, writing one 0.38 ms instead of 0.42.
    """
    dapl = h5py.h5p.create(h5py.h5p.DATASET_ACCESS)
    dapl.set_chunk_cache(0, 0, 1.0)
    return h5py.Dataset(h5py.h5d.open(group.id, name.encode(), dapl=dapl))
