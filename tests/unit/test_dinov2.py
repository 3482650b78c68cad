"""DINOv2 features for FD-DINOv2: the official weights file read through the real loading path.

No network and no real weights here: random weights in the exact layout of
Meta's ``dinov2_vits14_pretrain.pth`` (the small model keeps the file ~90 MB and
the CPU time low) are written where torch's hub cache keeps that file.
"""

from __future__ import annotations

import io
import re
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms as tv
from PIL import Image

import speciesgan.metrics.dinov2_layout as layout
from speciesgan.metrics.dinov2 import (
    DINOv2Features,
    _official_pos_embed,
    dinov2_features,
    load_dinov2,
)
from speciesgan.metrics.dinov2_standin import random_dinov2_state
from speciesgan.util.atomic import save_torch
from speciesgan.util.errors import SpeciesganError
from speciesgan.util.weights import checkpoints_dir, file_sha256
from tests.helpers.http_server import ServerState, serve

MODEL = "vits14"
FILE = layout.dinov2_arch(MODEL).file_name
DIM = 384


@pytest.fixture(scope="module")
def weights_file(torch_home: Path) -> Iterator[Path]:
    """Official-layout random weights in the session's torch cache, removed afterwards."""
    path = checkpoints_dir() / FILE
    written = not path.exists()  # a persistent SPECIESGAN_TEST_TORCH_HOME may hold real ones
    if written:
        save_torch(random_dinov2_state(MODEL, seed=0), path)
    yield path
    if written:
        path.unlink()


@pytest.fixture(scope="module")
def net(weights_file: Path) -> DINOv2Features:
    loaded, reason = load_dinov2(MODEL, download=False)
    assert loaded is not None, reason
    return loaded


def _images(count: int, seed: int) -> torch.Tensor:
    """Smooth colour blobs plus noise: 128 px uint8 crops like the pipeline's."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 3, 8, 8, generator=generator) * 255
    smooth = torch.nn.functional.interpolate(coarse, size=128, mode="bilinear")
    noisy = smooth + 20 * torch.randn(smooth.shape, generator=generator)
    return noisy.round().clamp(0, 255).to(torch.uint8)


def test_cached_weights_load_and_the_file_used_is_recorded(
    net: DINOv2Features, weights_file: Path
) -> None:
    assert net.info["weights"] == FILE
    assert net.info["weights_source"] == "cache"
    assert net.info["weights_sha256"] == file_sha256(weights_file)
    assert net.info["weights_bytes"] == weights_file.stat().st_size
    assert net.info["weights_verified"] is False  # Meta publishes no checksums
    assert net.info["feature_dim"] == DIM and net.info["input_size"] == 224


def test_features_are_normed_cls_tokens_deterministic_and_image_dependent(
    net: DINOv2Features,
) -> None:
    images = _images(4, seed=1)
    first, again = net(images), net(images)
    assert first.dtype == torch.float32 and tuple(first.shape) == (4, DIM)
    assert torch.equal(first, again)
    # after the final LayerNorm (unit scale, zero shift in these weights): standardised rows
    torch.testing.assert_close(first.mean(dim=1), torch.zeros(4), atol=1e-4, rtol=0)
    torch.testing.assert_close(first.std(dim=1, correction=0), torch.ones(4), atol=1e-3, rtol=0)
    distances = torch.cdist(first, first)
    off_diagonal = distances[~torch.eye(4, dtype=torch.bool)]
    assert off_diagonal.min() > 0.05 * first.norm(dim=1).mean()


def test_batching_does_not_change_features(net: DINOv2Features) -> None:
    images = _images(5, seed=2)
    features = dinov2_features(net, images, batch_size=2)
    assert features.dtype == np.float64 and features.shape == (5, DIM)
    np.testing.assert_allclose(features, net(images).double().numpy(), rtol=0, atol=1e-5)


def test_input_is_dgm_evals_transform_of_the_same_images_as_pil(net: DINOv2Features) -> None:
    """dgm-eval: Resize((224, 224), BICUBIC) on the PIL image, ToTensor, ImageNet Normalize."""
    images = _images(3, seed=3)
    transform = tv.Compose(
        [
            tv.Resize((224, 224), tv.InterpolationMode.BICUBIC),
            tv.ToTensor(),
            tv.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ]
    )
    pixels = torch.stack(
        [transform(Image.fromarray(image.permute(1, 2, 0).numpy())) for image in images]
    )
    with torch.no_grad():
        expected = net.vit(pixels)
    torch.testing.assert_close(net(images), expected, rtol=0, atol=1e-6)


def test_float_images_are_refused(net: DINOv2Features) -> None:
    with pytest.raises(ValueError, match="uint8"):
        net(torch.zeros(1, 3, 128, 128))


@pytest.fixture(scope="module")
def official_state(weights_file: Path) -> dict[str, torch.Tensor]:
    return torch.load(weights_file, weights_only=True)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"drop": "norm.weight"}, ["missing norm.weight"]),
        ({"drop": "mask_token"}, ["missing mask_token"]),
        # timm's name in an official file: a converted, not an official checkpoint
        (
            {"rename": ("blocks.3.attn.qkv.weight", "blocks.3.attn.qkv_w")},
            ["missing blocks.3.attn.qkv.weight", "unexpected blocks.3.attn.qkv_w"],
        ),
    ],
)
def test_a_missing_or_renamed_key_is_an_error_naming_the_file_and_key(
    official_state: dict[str, torch.Tensor],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    change: dict,
    named: list[str],
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    state = dict(official_state)
    if "drop" in change:
        del state[change["drop"]]
    else:
        old, new = change["rename"]
        state[new] = state.pop(old)
    path = checkpoints_dir() / FILE
    save_torch(state, path)
    with pytest.raises(SpeciesganError) as error:
        load_dinov2(MODEL, download=False)
    message = str(error.value)
    assert str(path) in message
    for part in named:
        assert part in message


def test_a_truncated_file_is_an_error_naming_it(
    weights_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    path = checkpoints_dir() / FILE
    path.parent.mkdir(parents=True)
    body = weights_file.read_bytes()
    path.write_bytes(body[: len(body) // 2])
    with pytest.raises(SpeciesganError, match=re.escape(str(path))):
        load_dinov2(MODEL, download=False)


def test_no_cached_weights_and_download_off_says_where_they_belong(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    loaded, reason = load_dinov2(MODEL, download=False)
    assert loaded is None
    assert str(checkpoints_dir() / FILE) in reason
    assert layout.dinov2_arch(MODEL).url in reason
    assert not (checkpoints_dir() / FILE).exists()


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_download_gives_the_url_and_cache_path_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    template = f"http://127.0.0.1:{_unused_port()}/dinov2_{{model}}/dinov2_{{model}}_pretrain.pth"
    monkeypatch.setattr(layout, "URL_TEMPLATE", template)
    loaded, reason = load_dinov2(MODEL, download=True)
    assert loaded is None
    assert template.format(model=MODEL) in reason
    assert str(checkpoints_dir() / FILE) in reason
    cache = checkpoints_dir()
    assert not cache.exists() or not any(cache.iterdir())  # no partial file left behind


def test_downloaded_weights_are_cached_and_give_the_same_features(
    net: DINOv2Features, weights_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    body = weights_file.read_bytes()
    with serve(ServerState(files={f"/{FILE}": body})) as base:
        monkeypatch.setattr(layout, "URL_TEMPLATE", f"{base}/dinov2_{{model}}_pretrain.pth")
        downloaded, reason = load_dinov2(MODEL, download=True)
    assert downloaded is not None, reason
    assert (checkpoints_dir() / FILE).read_bytes() == body
    assert downloaded.info["weights_source"] == "download"
    assert downloaded.info["weights_sha256"] == net.info["weights_sha256"]
    images = _images(2, seed=4)
    assert torch.equal(downloaded(images), net(images))


class _CodeRunningPayload:
    """Unpickling this calls open(marker, "w"): any code could run in its place."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple:
        return (open, (self.marker, "w"))


def test_a_served_pickle_is_not_run_and_the_download_is_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mirror, proxy or attacker serving a pickle in place of Meta's file."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    marker = tmp_path / "payload-ran"
    buffer = io.BytesIO()
    torch.save({"mask_token": torch.zeros(1), "x": _CodeRunningPayload(marker)}, buffer)
    with serve(ServerState(files={f"/{FILE}": buffer.getvalue()})) as base:
        monkeypatch.setattr(layout, "URL_TEMPLATE", f"{base}/dinov2_{{model}}_pretrain.pth")
        with pytest.raises(SpeciesganError, match=re.escape(str(checkpoints_dir() / FILE))):
            load_dinov2(MODEL, download=True)
    assert not marker.exists()
    assert not (checkpoints_dir() / FILE).exists()  # the next run downloads again


def test_without_timm_the_reason_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # what an environment without timm imports
    loaded, reason = load_dinov2(MODEL, download=False)
    assert loaded is None
    assert "pip install 'speciesgan[dinov2]'" in reason


def test_an_unknown_model_name_is_an_error() -> None:
    with pytest.raises(SpeciesganError, match="vitl14"):
        load_dinov2("vitl16", download=False)


def test_giant_swiglu_keys_map_to_the_official_names_and_back() -> None:
    """vitg14's official file names its SwiGLU layers mlp.w12 / mlp.w3 (timm: fc1 / fc2)."""
    import timm

    arch = layout.dinov2_arch("vitg14")
    with torch.device("meta"):
        keys = list(timm.create_model(arch.timm_name, num_classes=0, depth=2).state_dict())
    official = [layout.timm_to_official_key(key, arch) for key in keys]
    assert "blocks.1.mlp.w12.weight" in official and "blocks.1.mlp.w3.bias" in official
    assert not any(".mlp.fc" in key for key in official)
    assert [layout.official_to_timm_key(key, arch) for key in official] == keys
    assert layout.official_to_timm_key(layout.MASK_TOKEN, arch) is None


def _cubic_ramp(at: torch.Tensor, a: float = -0.75) -> torch.Tensor:
    """torch's bicubic (Keys, a = -0.75) interpolation of the ramp value[j] = j at ``at``."""

    def kernel(x: torch.Tensor) -> torch.Tensor:
        x = x.abs()
        near = ((a + 2) * x - (a + 3)) * x * x + 1
        far = ((x - 5) * x + 8) * x * a - 4 * a
        return torch.where(x <= 1, near, torch.where(x < 2, far, torch.zeros_like(x)))

    floor = at.floor()
    return sum((floor + k) * kernel(at - floor - k) for k in (-1, 0, 1, 2))


def test_position_embeddings_are_resampled_as_the_official_model_does() -> None:
    """DINOv2's interpolate_pos_encoding: bicubic, no antialiasing, scale (16 + 0.1) / 37.

    timm's checkpoint_filter_fn resamples to exactly 16 x 16 with antialiasing,
    which shifts every feature (by ~10% of their size for random weights).
    Channel 0 is a ramp along rows: its resampled values show where each new
    position samples the old grid.  Channel 1 is a checkerboard, which
    antialiasing would average away.
    """
    side, grid = 37, 16
    rows = torch.arange(side, dtype=torch.float32).view(side, 1).expand(side, side)
    checker = (torch.arange(side).view(side, 1) + torch.arange(side)) % 2 * 2.0 - 1
    patches = torch.stack([rows, checker], dim=-1).reshape(1, side * side, 2)
    cls = torch.tensor([[[7.0, -7.0]]])
    resampled = _official_pos_embed(torch.cat([cls, patches], dim=1), grid, Path("x.pth"))
    assert tuple(resampled.shape) == (1, 1 + grid * grid, 2)
    assert torch.equal(resampled[0, 0], cls[0, 0])
    new = resampled[0, 1:].reshape(grid, grid, 2)
    interior = torch.arange(1, grid - 1)
    sampled_at = (interior.double() + 0.5) * side / (grid + 0.1) - 0.5
    torch.testing.assert_close(new[1:-1, 5, 0].double(), _cubic_ramp(sampled_at), atol=1e-4, rtol=0)
    assert new[1:-1, 1:-1, 1].abs().mean() > 0.3  # the checkerboard survives: no antialiasing
