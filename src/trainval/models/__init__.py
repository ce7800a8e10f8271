"""Model architectures, found by name through a registry; importing this registers the built-ins and
the ``timm:NAME`` family (timm itself is imported only when one is built)."""

from trainval.models import fastnet, resnet, seed_cnn, timm_models  # noqa: F401  (registers the architectures)
from trainval.models.registry import (
    ModelEntry,
    family_prefixes,
    get_entry,
    is_known,
    register_family,
    register_model,
    registered_names,
)

__all__ = ["ModelEntry", "family_prefixes", "get_entry", "is_known", "register_family", "register_model",
           "registered_names"]
