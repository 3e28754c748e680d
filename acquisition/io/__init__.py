"""Layer 3: files in and out.

Importers, one module per source format, each writing a new session through
:func:`acquisition.io.importing.new_session_file` (the session appears whole or not at all):
:mod:`.xdf` (LabRecorder), :mod:`.video` (clips), :mod:`.depth` (RGB-D image folders),
:mod:`.table` (text exports: Acqknowledge, LabChart), :mod:`.brainflow` (BrainFlow recordings).
Every importer passes the shared conformance test (``tests/acquisition/io/conformance.py``).

Exports: :mod:`.mne_raw` (a session as one MNE ``Raw``; FIF, EDF, BDF, BrainVision files),
:mod:`.bids` (BIDS with mne-bids), :mod:`.xdf_export` (XDF 1.0, raw: the inverse of :mod:`.xdf`),
:mod:`.export` (CSV, and :func:`~acquisition.io.export.export_session`, the one entry point for every format).
"""
