"""``lmspec bench``: the speed and scale figures."""
