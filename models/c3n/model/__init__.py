"""The C3N network and its pretrained parts.

``network`` (C3IM, CCAM, the model configurations), ``backbone`` (MobileNetV2 and CCAM's
written-out backward), ``decoder`` (ASPP, TPAVI, the refinement path), ``yamnet`` (the audio
network), ``vggish`` (the official networks' VGGish with PCA, quantisation and the 527-class
AudioSet head, issue 24), ``frontend`` (16 kHz waveform -> log-mel patches, YAMNet and VGGish,
the reference of ``src/frontend/``), ``build`` (the model with its pretrained weights, optionally
from a checkpoint), ``inview`` (the ``in_view`` head, issue 26); the official networks' visual
backbones with their checkpoint key names, ``pvt_v2`` (PVT-v2-b5), ``swin`` (Swin-B) and
``resnet`` (ResNet-50), ``camgrad`` (CCAM's Grad-CAM weights for any backbone as ordinary forward
ops), ``official_decoder`` and ``official`` (the imported networks, issue 24).
"""
