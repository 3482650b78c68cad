"""``speciesgan report --out-loss-curves``: the GAN loss plot as a file of its own.

The run's report.html embeds this plot; Snakemake's own report (``snakemake
--report``) shows only files, so the same picture is also written as a PNG, with no
metadata, so that a rebuild from the same training log gives the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from speciesgan.util.atomic import atomic_open


def loss_curves_png(log_frame: pd.DataFrame) -> np.ndarray:
    """Loss columns of the training log against the step, rendered with Agg to HWC uint8."""
    x_column = "step" if "step" in log_frame.columns else None
    numeric = [c for c in log_frame.select_dtypes("number").columns if c != x_column]
    columns = [c for c in numeric if "loss" in c.lower()] or numeric
    x = log_frame[x_column] if x_column else np.arange(len(log_frame))
    figure = Figure(figsize=(8, 4), dpi=100)
    canvas = FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for column in columns:
        axes.plot(x, log_frame[column], label=column, linewidth=1)
    axes.set_xlabel(x_column or "log row")
    axes.grid(alpha=0.3)
    if columns:
        axes.legend(loc="best", fontsize="small")
    figure.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def write_loss_curves(training_log: Path, out_png: Path) -> None:
    """Plot the loss columns of ``training_log`` (CSV) against the step into ``out_png``."""
    image = Image.fromarray(loss_curves_png(pd.read_csv(training_log)))
    with atomic_open(out_png) as fh:
        image.save(fh, format="PNG")
