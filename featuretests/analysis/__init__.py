"""Research analyses over models and harvested activations. Each module is one analysis; each takes arrays or a
LoadedModel and returns plain data (dataclasses / dicts) that the report can render."""
