"""speciesgan: animal photo collections in, a species-conditional image generator out."""

__version__ = "0.1.0"
