"""The frozen VGG encoder of the perceptual loss (`encoder`) and the weight sources that need only PyPI (`sources`)."""
