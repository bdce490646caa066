"""Named configurations: FPA generator presets (`presets/*.json`) and the paper's recipes.

Installed as `fpa_plugin.training_configs`; read through `fpa_plugin.core.presets`.
"""
