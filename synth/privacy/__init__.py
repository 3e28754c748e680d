"""The privacy audit of synthetic expression corpora (``emosync synth audit``) and the sampling-time filter.

``nearest``        chunked nearest-neighbour distances (pixel space and embeddings)
``identity``       the disclosed identity encoder trained on the training subjects
``identity_privacy`` are the corpus's people new? per-identity distances, re-identification attack
``membership``     loss-threshold membership inference: ROC AUC, TPR at 1 % FPR
``memorization``   calibrated copy threshold, memorized-frame count, closest-pairs PNG
``reference_interval`` cluster bootstrap over held-out people: borderline verdicts
``rejection``      :class:`NearestNeighbourFilter`, used by the sampler to drop near-copies
``corpus_frames``  a corpus folder read back as frames
``audit``          :func:`audit_corpus`, :class:`AuditReport` and the pass/fail rule
``summary``        audit.md
``config``         ``configs/synth/audit.yaml``
"""

from synth.privacy.audit import AuditReport, apply_rule, audit_corpus
from synth.privacy.config import AuditConfig, load_audit_config
from synth.privacy.membership import roc_auc, tpr_at_fpr
from synth.privacy.nearest import nearest_neighbours
from synth.privacy.reference_interval import cluster_bootstrap
from synth.privacy.rejection import NearestNeighbourFilter

__all__ = ["AuditConfig", "AuditReport", "NearestNeighbourFilter", "apply_rule", "audit_corpus", "cluster_bootstrap",
           "load_audit_config", "nearest_neighbours", "roc_auc", "tpr_at_fpr"]
