"""The C3N network and its pretrained parts.

``network`` (C3IM, CCAM, the model configurations), ``backbone`` (MobileNetV2 and CCAM's
written-out backward), ``decoder`` (ASPP, TPAVI, the refinement path), ``yamnet`` (the audio
network), ``frontend`` (16 kHz waveform -> log-mel patches, the reference of ``src/frontend/``),
``build`` (the model with its pretrained weights, optionally from a checkpoint); the official
networks' visual backbones with their checkpoint key names, ``pvt_v2`` (PVT-v2-b5), ``swin``
(Swin-B) and ``resnet`` (ResNet-50), and ``camgrad`` (CCAM's Grad-CAM weights for any backbone
as ordinary forward ops, issue 24).
"""
