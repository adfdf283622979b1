"""Deployment: the ONNX export (``exporter``, ``python -m c3n.export``) with its per-frame split
(``frame_split``), the INT8 / FP16 variants (``quantize``), onnxruntime profiling (``profile``) and
PyTorch timing (``bench_torch``).
"""
