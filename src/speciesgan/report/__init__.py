"""What a run shows its reader: report.html (``page``), the loss plot, the long-tail figures, the ablation table."""
