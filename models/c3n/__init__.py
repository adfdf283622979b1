"""C3N-edge model package: C3N (Shi et al., IEEE TMM 2024, arXiv 2310.06259) on MobileNetV2 + YAMNet.

Layers, lowest first (a module uses only its own layer or lower ones; ``tests/module_graph.py``):

* ``paths``, ``audio_io``: where files live, audio decoding;
* ``packages``: the pinned registry packages (pretrained weights, media), downloaded and verified;
* ``labels``: the ImageNet / AudioSet class names; ``categories`` (the category vocabulary) and
  ``similarity`` (C3IM's S matrix);
* ``model``: the network (C3IM, CCAM, TPAVI decoder, MobileNetV2, YAMNet, log-mel front end);
* ``data``: AVSBench loaders and the AVS-Composites generator;
* ``eval``: AVSBench metrics and the evaluators;
* ``train`` (training, feature cache) and ``export`` (ONNX, quantisation, profiling);
* the commands kept under their documented names (``python -m c3n.fetch``, ``c3n.evaluate``,
  ``c3n.featcache``, ``c3n.train_frozen``, ``c3n.eval_cached``, ``c3n.labelstats``,
  ``c3n.regionstats``, ``c3n.report``, ``c3n.quantize``, ``c3n.profile``, ``c3n.bench_torch``,
  ``c3n.import_official``):
  each runs the ``main`` of the module it names.
"""
MODEL_VERSION = "0.1.0"
