"""Reports of the drills: Allure evidence, categories, environment, history, scorecard.

``shakeout.report.evidence.attach_drill_evidence`` is called by the drill fixture after each
drill; ``steps/report_plugin.py`` does the rest at scenario start and session end; ``python -m
shakeout.report build`` builds the HTML report. See docs/reports.md.
"""
