"""Which students quantise well to int8, by model name (no torch: `kdedge init` checks a name at once).

Hard-swish and squeeze-excite (a sigmoid gate multiplied into the features) are the layers where int8 loses
a network's answers: on RetinaMNIST a MobileNetV3-Small student's int8 file agreed with its fp32 file on
71-76 % of the test images, under `kdedge export`'s bound of 97 %. Networks of ReLU / ReLU6 convolutions
without squeeze-excite (MobileNetV2, ResNet, EfficientNet-Lite) keep theirs. tests/test_models.py builds one
model of each family below and checks that it has those layers, and that the friendly ones have none.
"""

from __future__ import annotations

# ReLU / ReLU6 convolutions, no squeeze-excite; the first is `kdedge init`'s default student
INT8_FRIENDLY_STUDENTS = ("mobilenetv2_100", "resnet18", "efficientnet_lite0")

# timm name prefixes of families with hard-swish or squeeze-excite layers, and which of the two
HARD_SWISH_OR_SE = {
    "mobilenetv3": "hard-swish and squeeze-excite",
    "tf_mobilenetv3": "hard-swish and squeeze-excite",
    "lcnet": "hard-swish and squeeze-excite",
    "fbnetv3": "hard-swish and squeeze-excite",
    "hardcorenas": "hard-swish and squeeze-excite",
    "efficientvit": "hard-swish",
    "levit": "hard-swish",
    "ghostnet": "squeeze-excite",
    "repghostnet": "squeeze-excite",
    "efficientnet_b": "squeeze-excite",
    "tf_efficientnet_b": "squeeze-excite",
    "efficientnetv2": "squeeze-excite",
    "tf_efficientnetv2": "squeeze-excite",
    "mixnet": "squeeze-excite",
    "tf_mixnet": "squeeze-excite",
    "semnasnet": "squeeze-excite",
    "tinynet": "squeeze-excite",
    "rexnet": "squeeze-excite",
    "regnety": "squeeze-excite",
}


def int8_trouble(model: str) -> str | None:
    """The layers of `model` that quantise badly ("hard-swish and squeeze-excite"), or None when its family
    is not known to have any."""
    prefix = max((p for p in HARD_SWISH_OR_SE if model.startswith(p)), key=len, default=None)
    return HARD_SWISH_OR_SE[prefix] if prefix else None
