"""The run's configuration: ``config.schema.yaml`` (keys, types, defaults) and its loading.

``speciesgan.config.loading`` reads, layers and validates the config files; the
names below are the ones the workflow, the CLI and the tests use.
"""

from speciesgan.config.loading import (
    BASE_CONFIG,
    DETECTION_KEYS,
    DIFFAUGMENT_OPS,
    MAX_CONFIG_NODES,
    config_size_problem,
    demo_key,
    demo_key_pattern,
    layer_config,
    load_config,
    load_schema,
    number_problems,
    read_config_file,
    registered_names,
    run_key,
    section_defaults,
    validate_config,
)

__all__ = [
    "BASE_CONFIG",
    "DETECTION_KEYS",
    "DIFFAUGMENT_OPS",
    "MAX_CONFIG_NODES",
    "config_size_problem",
    "demo_key",
    "demo_key_pattern",
    "layer_config",
    "load_config",
    "load_schema",
    "number_problems",
    "read_config_file",
    "registered_names",
    "run_key",
    "section_defaults",
    "validate_config",
]
