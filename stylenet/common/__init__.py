"""What every layer uses: atomic file writes, the one error path, image files <-> tensors, precision, devices and
seeding, the user cache folder. Imports nothing else of stylenet."""
