"""Live edge inference (``emosync live``): an exported edge model on live LSL streams, results as LSL streams.

One module per job: :mod:`.config` (``configs/live``), :mod:`.inputs` (resolve by predicate, one pulling
thread and ring buffer per stream), :mod:`.views` (the model's windows and preprocessing from the
buffers, checks of the streams against the model), :mod:`.spotter` (the causal spotter and its EMG /
video front ends), :mod:`.emg_au` (online EMG AU coding), :mod:`.outlets` (``<name>-Expressions``,
``<name>-AU``, ``<name>-Latency``), :mod:`.runner` (the loop) and :mod:`.cli`. It needs the ``edge``
extra (onnxruntime) but not torch; it never imports ``synth``.
"""
