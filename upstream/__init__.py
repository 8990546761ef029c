"""What this project knows of its upstream (TFX, TFMA, TFDV, Beam) beyond their public APIs:
their on-disk formats (formats.py) and the workarounds around them (workarounds.py).

The lowest floor: it imports nothing of this project.
"""
