"""Layer 3: sources that publish LSL streams from hardware (cameras, RealSense, BrainFlow boards).

A new device goes here as one module with a class that opens the hardware and pushes LSL
chunks; its command goes in :mod:`acquisition.cli`. See ``docs/architecture.md``.
"""
