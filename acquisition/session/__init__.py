"""Layer 2: the HDF5 session file, the spine every other part reads or writes.

:mod:`.format` (schema, :class:`StreamSpec`), :mod:`.writer` (the one writer, derived
streams), :mod:`.reader` (lazy reading, synchronized times), :mod:`.frame_codec` (per-frame
PNG/JPEG, the hdf5plugin filters lz4/blosc2), :mod:`.compression_choice` (``auto``: the storage form
measured per stream), :mod:`.lz4_frames` (LZ4 frames decompressed on all cores),
:mod:`.frame_stamp` (frame-index stamps and dropped-frame reports),
:mod:`.markers` (the expression-marker convention and its one parser),
:mod:`.alignment` (windows and resampling), :mod:`.summary` (what ``emosync info`` shows).
"""
