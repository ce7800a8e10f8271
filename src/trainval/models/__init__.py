"""Model architectures, found by name through a registry; importing this registers the built-ins."""

from trainval.models import fastnet, resnet, seed_cnn  # noqa: F401  (registers "fastnet", "resnet18", "seed-cnn")
from trainval.models.registry import ModelEntry, get_entry, register_model, registered_names

__all__ = ["ModelEntry", "get_entry", "register_model", "registered_names"]
