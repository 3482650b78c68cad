"""The config schema's defaults, for every layer: the one reader of ``config.schema.yaml``.

The schema (``src/speciesgan/config/config.schema.yaml``) states every setting's
default once.  The data stages sit below ``speciesgan.config`` in the import
layering, so they cannot ask it; they, and ``speciesgan.config.section_defaults``,
read the defaults here instead.  The file is read as package data (a data file
beside the config package's modules, not an import of them), parsed once per
process, and only when a default is first asked for: importing this module costs
nothing.  The defaults are the raw schema's: ``speciesgan.config.load_schema``
fills in the registry lists (``x-registry``), which hold no defaults.
"""

from __future__ import annotations

import copy
import functools
from importlib import resources
from typing import Any

import yaml

SCHEMA_FILE = "config/config.schema.yaml"
"""The schema, relative to the ``speciesgan`` package."""
ANY_NAME = "*"
"""In a ``schema_defaults`` path: any name of a mapping whose keys the user chooses
(its ``additionalProperties``), such as a dataset of ``datasets``."""


@functools.cache
def raw_schema() -> dict[str, Any]:
    """The parsed schema file, as written (shared: callers must not change it)."""
    text = resources.files("speciesgan").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    return yaml.safe_load(text)


def schema_defaults(section: str, *path: str) -> dict[str, Any]:
    """The schema's default of every setting of config section ``section`` that has one.

    ``path`` goes deeper, through objects' ``properties`` (``ANY_NAME`` for a mapping's
    user-chosen keys): ``schema_defaults("datasets", ANY_NAME, "camera_trap")`` are a
    dataset's ``camera_trap`` defaults.  Includes the ``x-stage-default`` ones, which
    validation leaves out of the config.  A fresh copy: callers may change theirs.
    """
    node = raw_schema()
    for name in (section, *path):
        node = node["additionalProperties"] if name == ANY_NAME else node["properties"][name]
    return {
        name: copy.deepcopy(spec["default"])
        for name, spec in node.get("properties", {}).items()
        if "default" in spec
    }
