"""Latency of the studio: one request for 1, 16 and 64 pictures at 64 and 128 px.

Each generator is built with a config's ``gan`` settings (default configs/demo.yaml,
the run whose generator draws 64 px; random weights, which cost the same as trained
ones) and saved as training saves it.  The real server answers over HTTP on
127.0.0.1 with its default workers; every timed request uses a new seed, so nothing
comes from the picture cache.  Prints the median and slowest of ``--repeats``
requests after one warm-up request.  Usage::

    python benchmarks/studio.py                          # the demo's generator
    python benchmarks/studio.py --config config.yaml     # the main run's (bigger) one
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import yaml

from speciesgan.gan.networks import build_networks, save_generator
from speciesgan.studio.server import LiveServer
from speciesgan.studio.service import Studio, resolve_source

REPO = Path(__file__).resolve().parents[1]


def make_generator(path: Path, settings: dict, size: int, classes: int) -> Path:
    generator, _ = build_networks(settings, classes, size, seed=0)
    species = [f"species {k}" for k in range(classes)]
    save_generator(path, generator, settings, species, size)
    return path


def time_requests(url: str, n: int, repeats: int, first_seed: int) -> list[float]:
    """Seconds per request for ``n`` pictures, each request with a seed not drawn before."""
    times = []
    with httpx.Client(base_url=url, timeout=600) as http:
        for k in range(repeats + 1):
            body = {"species": k % 3, "seed": first_seed + k, "n": n}
            start = time.perf_counter()
            response = http.post("/api/pictures", json=body)
            elapsed = time.perf_counter() - start
            response.raise_for_status()
            assert len(response.json()["pictures"]) == n
            if k:  # the first request warms up the workers
                times.append(elapsed)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "demo.yaml")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--workers", type=int, default=None, help="default: the studio's")
    args = parser.parse_args()
    settings = yaml.safe_load(args.config.read_text())["gan"]
    print(
        f"gan settings from {args.config.name}: model {settings.get('model')}, "
        f"g_channels {settings.get('g_channels')}, z_dim {settings.get('z_dim')}; "
        f"{args.repeats} timed requests each (after 1 warm-up), new seeds, over HTTP"
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            path = make_generator(Path(tmp) / f"g{size}.pt", settings, size, args.classes)
            studio = Studio(resolve_source(path), args.workers)
            try:
                with LiveServer(studio) as server:
                    for n in args.counts:
                        times = time_requests(server.url, n, args.repeats, first_seed=1000 * n)
                        rows.append((size, n, statistics.median(times), max(times)))
                workers = studio.renderer.workers
            finally:
                studio.close()
    print(f"\n| px | pictures | median s | slowest s | pictures/s |  ({workers} workers)")
    print("|---:|---:|---:|---:|---:|")
    for size, n, median, slowest in rows:
        print(f"| {size} | {n} | {median:.3f} | {slowest:.3f} | {n / median:.1f} |")


if __name__ == "__main__":
    main()
