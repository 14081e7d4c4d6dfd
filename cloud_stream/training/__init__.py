"""Training, ONNX export, INT8 quantization and evaluation (torch lives in the ``train`` extra)."""
