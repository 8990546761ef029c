"""Custom TFX components of this project (each in its own package)."""
