"""C3N-edge model package: C3N (Shi et al., IEEE TMM 2024, arXiv 2310.06259) on MobileNetV2 + YAMNet.

Modules: ``frontend`` (log-mel), ``fetch`` (pinned pretrained parts), ``labels``, ``yamnet``,
``similarity`` (C3IM's S matrix), ``model`` (C3IM, CCAM, TPAVI decoder), ``export`` (ONNX),
``data`` (AVSBench and AVS-Composites), ``metrics`` (AVSBench mIoU / F-score), ``train``.
"""
MODEL_VERSION = "0.1.0"
