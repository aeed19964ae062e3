"""One register map per meter model, each a text table in TABLE (format: ../regmap.py)."""
