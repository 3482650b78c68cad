"""speciesgan: animal photo collections in, a species-conditional image generator out."""

from speciesgan.runtime.cpu_sharing import share_cpus

share_cpus()  # before anything imports torch (see speciesgan.runtime.cpu_sharing)

__version__ = "0.1.0"
