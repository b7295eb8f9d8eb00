"""ShakeOut's step library: thin pytest-bdd steps over the drill engine (``shakeout.drill``)."""
