"""emosync fusion: multi-view contrastive pretraining over sessions (RGB, depth, EMG, EEG).

Fusion reads only session files (through :mod:`acquisition`). The training code
arrives with the pretraining issue; this package is the place it lives.
"""
