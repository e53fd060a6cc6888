"""red_params.conf: the schema of every key, the loader with its one validation step, and the sample renderer."""

from redpss.core.config.kinds import Secret
from redpss.core.config.loader import load_config, parse_config
from redpss.core.config.sample import render_config
from redpss.core.config.schema import Config, DefaultSettings, RedctlSettings, RedinfoSettings, RestSettings

__all__ = [
    "Config",
    "DefaultSettings",
    "RedctlSettings",
    "RedinfoSettings",
    "RestSettings",
    "Secret",
    "load_config",
    "parse_config",
    "render_config",
]
