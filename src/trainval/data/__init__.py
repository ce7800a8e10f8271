"""In-memory data: checking user arrays, splitting off validation data, and planning batches."""
