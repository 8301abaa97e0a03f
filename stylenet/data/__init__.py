"""Training data: photo folders, style images and their resumable order (`photos`), and the precomputed crops with
their content features (`precomputed`, written by python -m stylenet.precompute)."""
