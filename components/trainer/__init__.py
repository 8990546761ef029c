"""TFX's Trainer with its warm-start decision recorded on the Model artifact in MLMD."""
