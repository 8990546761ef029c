"""Input data: where the default data comes from and how it reaches the pipeline's data directory."""
