"""Model compression for the recognizer: regularised QAT, gradual sparsification, int8 export, edge figures.

``quantize`` (grids, Lloyd–Max, regularisers) and ``sparsity`` (cubic schedule, masks) are pure
torch; ``recipe`` carries them out inside ``models.rnnt.train``'s loop; ``finetune`` is the driver;
``onnx_forms``/``ort_speed`` the onnxruntime side; ``hardware`` the firmware_sim side; ``evaluate``
is ``make eval-compression``. docs/compression.md explains the methods and the commands.
"""
