"""Edge export: fusion encoders (and a recognizer's head) as ONNX files that run without PyTorch.

``emosync export-model RUN --quantize int8 --calibrate sessions/*.h5 --out models/edge1`` (:mod:`.cli`).
:mod:`.source` reads what is exported (a pretraining run or a recognizer folder) and the calibration
windows from sessions; :mod:`.export` writes one ONNX graph per encoder with ``torch.onnx.export`` and
checks it against PyTorch; :mod:`.quantize` makes int8 variants with onnxruntime (static, calibrated on
the windows; dynamic) and times every variant, keeping int8 only where it is faster; :mod:`.card` writes
the folder's ``config.json`` and Markdown card; :mod:`.build` runs the whole export; and
:class:`.runtime.EdgeModel` loads the folder back with onnxruntime alone.

Everything here needs the ``edge`` extra (``pip install "emosync[edge]"``: onnx, onnxruntime, onnxscript).
"""
