"""``speciesgan report --out-loss-curves``: the GAN loss plot as a file of its own.

The run's report.html embeds this plot; Snakemake's own report (``snakemake
--report``) shows only files, so the same picture is also written as a PNG, with no
metadata, so that a rebuild from the same training log gives the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from PIL import Image

from speciesgan.report.page import loss_curves_png
from speciesgan.util.atomic import atomic_open


def write_loss_curves(training_log: Path, out_png: Path) -> None:
    """Plot the loss columns of ``training_log`` (CSV) against the step into ``out_png``."""
    image = Image.fromarray(loss_curves_png(pd.read_csv(training_log)))
    with atomic_open(out_png) as fh:
        image.save(fh, format="PNG")
