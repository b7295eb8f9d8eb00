"""Code that runs inside the Locust process, never in the harness (Locust patches with gevent).

``shakeout.loadworker.capture`` records every request a Locust user makes; a load profile in
``loadprofiles/`` imports it. The harness reads the records with :mod:`shakeout.load`.
"""
