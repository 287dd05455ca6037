"""segspaste_jax's private modules; the public names live in `segspaste_jax`."""
