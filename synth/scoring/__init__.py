"""Independent AU-fidelity scoring of synthetic corpora (``emosync synth score``).

One module per job: :mod:`.coherence` (frame-to-frame flicker), :mod:`.metrics` (per-AU r, MAE,
onset/apex/offset timing), :mod:`.estimator` (the AU regressor trained only on reference
subjects), :mod:`.reference` (reading and checking the reference sessions), :mod:`.controls`
(ceiling, memorization and floor), :mod:`.score` (the whole run) and :mod:`.report` (table, JSON,
figure).
"""

from synth.scoring.coherence import frame_flicker

__all__ = ["frame_flicker"]
