"""Pusher: TFX's Pusher, made to publish last and all or nothing.

It pushes the SavedModel version and its TFLite twin together, each written aside and renamed
into place, so a reader (TF Serving, a device build) sees a version complete or not at all.
component.py (the TFX component), executor.py (a thin adapter over TFX's Pusher executor),
publish.py (the logic, as plain functions).
"""
