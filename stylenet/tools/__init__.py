"""What the scripts in scripts/ share (timing, the machine line, a training run through the entry point)."""
