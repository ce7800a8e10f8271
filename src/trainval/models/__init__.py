"""Model architectures, found by name through a registry; importing this registers the built-ins."""

from trainval.models import fastnet, seed_cnn  # noqa: F401  (registers "fastnet", "seed-cnn")
from trainval.models.registry import ModelEntry, get_entry, register_model, registered_names

__all__ = ["ModelEntry", "get_entry", "register_model", "registered_names"]
