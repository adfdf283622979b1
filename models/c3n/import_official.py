"""``python -m c3n.import_official``: import a checkpoint of the official C3N code or of the AVSBench
baseline into the c3n-edge ONNX contract (runs :func:`c3n.export.official.main`; issue 24).

    python -m c3n.import_official --code c3n|avsbench --visual pvt_v2_b5|swin_base|resnet50 \\
        --audio vggish|panns --checkpoint CKPT.pth \\
        [--vggish PTH --vggish-pca PTH --audio-head PTH | --panns PTH] \\
        [--similarity SIM.h5] --frames 5|1 --out OUT.onnx
"""
import sys

from .export.official import main

if __name__ == "__main__":
    sys.exit(main())
