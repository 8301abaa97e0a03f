"""How pictures are measured: the perceptual loss (`perceptual`), the Gatys optimisation that minimises it for one
picture (`gatys`), and the picture scores that use no training weights (`scores`)."""
