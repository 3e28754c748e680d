"""Expression recognition: which emotion was that (micro-)expression? A head on the fusion encoders.

``emosync recognize train|evaluate|predict`` (:mod:`.cli`). Each expression interval (ground truth
from a session's ``Markers``, or spotted by ``emosync spot``) becomes one multi-modal clip, the
pretraining window centred on its apex (:mod:`.intervals`); the clip's modalities are embedded by
the encoders of a pretraining run (or the same encoders from random init), concatenated and
classified into a class set (:mod:`.classes`: MEGC 2019's ``megc3`` or ``basic7``) by
:class:`.head.RecognitionModel`. :mod:`.evaluate` holds the MEGC metrics (UF1, UAR) and
leave-one-subject-out evaluation; :mod:`.plots` the confusion matrix.
"""
