"""Read LZ4-filtered video frames with the decompression spread over the CPU cores.

Reading frames stored through HDF5's LZ4 filter (``compression="lz4"``) the ordinary way runs the
filter inside HDF5, one chunk after another and under h5py's global lock, so it uses one core:
about 0.4 ms per 640x480 frame, 75 ms for a 1-s window of 200 fps video. This module takes each
frame's compressed chunk as stored (``read_direct_chunk``, a plain read) and decompresses the chunks
in a thread pool with the ``LZ4_decompress_safe`` function of the very plugin library that HDF5
uses (shipped by ``hdf5plugin``; ctypes releases the GIL during the call), straight into the
caller's array. The result is byte for byte what HDF5 returns (tested); a chunk this code does not
recognise makes :func:`read_lz4_frames` return False, and the caller reads the ordinary way.

The chunk format is the HDF5 LZ4 filter's (``H5Zlz4.c``): an 8-byte big-endian original size and a
4-byte block size, then per block a 4-byte big-endian compressed size and the block, stored as is
when it did not compress.
"""

from __future__ import annotations

import ctypes
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import h5py
import numpy as np

#: HDF5's registered id of the LZ4 filter.
LZ4_FILTER_ID = 32004
#: Threads that decompress (one per core, at most 4: the reads feeding them are sequential).
WORKERS = max(1, min(4, os.cpu_count() or 1))

_lock = threading.Lock()
_state: dict[str, Any] = {}


def _library() -> Any:
    """The plugin library's ``LZ4_decompress_safe`` (loaded once), or None if it cannot be found."""
    with _lock:
        if "lz4" not in _state:
            try:
                from acquisition.session.frame_codec import load_filters

                path = os.path.join(load_filters().PLUGIN_PATH, "libh5lz4.so")
                function = ctypes.CDLL(path).LZ4_decompress_safe
                function.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
                function.restype = ctypes.c_int
            except (ImportError, OSError, AttributeError):
                function = None  # another platform's file name, or no hdf5plugin: HDF5 reads instead
            _state["lz4"] = function
            _state["pool"] = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="lz4-read")
        return _state["lz4"]


def is_plain_lz4(dataset: h5py.Dataset) -> bool:
    """True if ``dataset`` is chunked one frame per chunk with the LZ4 filter as its only filter."""
    plist = dataset.id.get_create_plist()
    chunks = dataset.chunks
    return (chunks is not None and chunks[0] == 1 and tuple(chunks[1:]) == tuple(dataset.shape[1:])
            and plist.get_nfilters() == 1 and plist.get_filter(0)[0] == LZ4_FILTER_ID)


def _decode(chunk: bytes, dest: np.ndarray, decompress: Any) -> bool:
    """Decompress one stored chunk into ``dest`` (C-contiguous); False if the chunk is not as expected."""
    size = dest.nbytes
    if len(chunk) < 12 or int.from_bytes(chunk[:8], "big") != size:
        return False
    block = int.from_bytes(chunk[8:12], "big")
    if block <= 0:
        return False
    source = ctypes.cast(ctypes.c_char_p(chunk), ctypes.c_void_p).value
    target = dest.ctypes.data
    pos, done = 12, 0
    while done < size:
        want = min(block, size - done)
        if pos + 4 > len(chunk):
            return False
        stored = int.from_bytes(chunk[pos:pos + 4], "big")
        pos += 4
        if stored <= 0 or pos + stored > len(chunk):
            return False
        if stored == want:  # the filter keeps a block that did not compress as it was
            ctypes.memmove(target + done, source + pos, want)
        elif decompress(source + pos, target + done, stored, want) != want:
            return False
        pos += stored
        done += want
    return True


def read_lz4_frames(dataset: h5py.Dataset, start: int, stop: int, out: np.ndarray) -> bool:
    """Read frames ``start:stop`` of an LZ4-filtered dataset into ``out[:stop - start]``, in parallel.

    Parameters
    ----------
    dataset : h5py.Dataset
        Frames ``(n, height, width[, 3])`` for which :func:`is_plain_lz4` is True.
    start, stop : int
        The frames to read (checked by the caller).
    out : array
        C-contiguous, of the dataset's dtype and frame shape, with at least ``stop - start`` rows.

    Returns
    -------
    done : bool
        False if the parallel path cannot be used here (no plugin library, an unexpected chunk);
        ``out`` must then be read the ordinary way.
    """
    decompress = _library()
    if decompress is None or not out.flags.c_contiguous:
        return False
    pool = _state["pool"]
    dsid = dataset.id
    zeros = (0,) * (len(dataset.shape) - 1)
    futures, usable = [], True
    for i in range(stop - start):
        mask, chunk = dsid.read_direct_chunk((start + i, *zeros))
        if mask:  # the filter was skipped for this chunk: HDF5 knows what to do with it
            usable = False
            break
        futures.append(pool.submit(_decode, chunk, out[i], decompress))
    # Wait for every thread before returning: none may still write into out when the caller takes over.
    results = [future.result() for future in futures]
    return usable and all(results)


__all__ = ["is_plain_lz4", "read_lz4_frames"]
