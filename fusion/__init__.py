"""emosync fusion: multi-view contrastive pretraining over sessions (RGB, depth, EMG, EEG).

Fusion reads only session files (through :mod:`acquisition`):

- :mod:`fusion.data` — ``SessionWindows``: windows over sessions, one view per modality, with masks;
- :mod:`fusion.encoders`, :mod:`fusion.model` — per-modality backbones + lightly projection heads,
  ``save_pretrained`` / ``from_pretrained``;
- :mod:`fusion.losses` — the multi-view (CMC full-graph) contrastive loss;
- :mod:`fusion.train`, :mod:`fusion.evaluate` — the training loop (resumable) and retrieval/probe evaluation.
"""
