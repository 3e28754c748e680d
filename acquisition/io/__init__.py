"""Layer 3: files in and out: XDF, video, depth and table importers; MNE, EDF, BrainVision, BIDS, CSV exports.

Every importer writes through :class:`acquisition.session.writer.SessionWriter` and passes the
shared importer conformance test (``tests/acquisition/io/conformance.py``).
"""
