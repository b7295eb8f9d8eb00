"""ShakeOut's Chaos Toolkit extension and the engine that runs experiments.

``shakeout.chaos.local.actions`` and ``shakeout.chaos.local.probes`` are the activities of the
embedded platform, laid out as Chaos Toolkit extensions are (one ``actions`` and one ``probes``
module per target). ``shakeout.chaos.runner`` runs an experiment with ``chaos run`` in its own
process and reads its journal.
"""
