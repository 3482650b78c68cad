"""The independent judge: a classifier that shares nothing with the discriminator.

The GAN's discriminator reads frozen ImageNet EfficientNet-Lite0 features and the
evaluation classifier is a fine-tuned Lite0, so a generator could match Lite0's
features without drawing the animal and both would agree (Kynkäänniemi et al.,
ICLR 2023, show FID following ImageNet class features rather than image quality).
The judge is a small CNN trained from scratch on the train crops only: its
verdict on generated images cannot come from features G was trained against.
"""

from __future__ import annotations

from typing import Any

JUDGE_ARCH = "small_cnn"
TRAINING_KEYS = ("epochs", "batch_size", "lr", "weight_decay", "label_smoothing")
"""The ``judge`` settings that are the classifier recipe's; ``min_accuracy`` is evaluate's."""


def judge_classifier_settings(judge: dict[str, Any]) -> dict[str, Any]:
    """The ``classifier`` settings that train the judge from the config's ``judge`` section."""
    return {
        "arch": JUDGE_ARCH,
        "pretrained": "none",
        **{key: judge[key] for key in TRAINING_KEYS if key in judge},
    }
