"""Offline stand-in for an official DINOv2 checkpoint: random weights in its exact layout.

Like the random Inception and EfficientNet stand-ins of ``speciesgan.util.weights``
(for machines without internet), but it needs the key mapping of
``dinov2_layout``, so it lives with the metrics that read such files.
"""

from __future__ import annotations

import torch

from speciesgan.metrics.dinov2_layout import (
    MASK_TOKEN,
    OFFICIAL_IMAGE_SIZE,
    dinov2_arch,
    timm_to_official_key,
)


def random_dinov2_state(model: str = "vits14", seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights in the exact layout of the official DINOv2 file for ``model``.

    timm's DINOv2 ViT is built at the official 518 px (a pos_embed of 37 x 37
    positions), its parameters renamed to the official keys and the official
    ``mask_token`` added, so the loader reads this file exactly as it reads
    Meta's.  Layer scale starts at 1, as in the official torch hub
    constructors: timm's default of 1e-5 would make every block a near no-op,
    and all images would get almost the same features.
    """
    import timm

    arch = dinov2_arch(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = timm.create_model(
            arch.timm_name,
            pretrained=False,
            img_size=OFFICIAL_IMAGE_SIZE,
            num_classes=0,
            init_values=1.0,
        )
    state = {timm_to_official_key(key, arch): value for key, value in net.state_dict().items()}
    state[MASK_TOKEN] = torch.zeros(1, arch.feature_dim)
    return state
