"""Layer 4: pictures of sessions: the timeline and sync-quality plots, the HTML QC report."""
