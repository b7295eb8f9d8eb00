"""Root pytest configuration: the step library is a plugin, visible to every feature."""

pytest_plugins = [
    "steps.plugin",
    "steps.drill_steps",
    "steps.report_plugin",
    "steps.gameday_plugin",
    "steps.pipeline_plugin",
]
