"""Layer 2: the HDF5 session file, the spine every other part reads or writes.

:mod:`.format` (schema, :class:`StreamSpec`), :mod:`.writer` (the one writer, derived
streams), :mod:`.reader` (lazy reading, synchronized times), :mod:`.frame_codec` (per-frame
PNG/JPEG), :mod:`.markers` (the expression-marker convention and its one parser),
:mod:`.alignment` (windows and resampling), :mod:`.summary` (what ``emosync info`` shows).
"""
