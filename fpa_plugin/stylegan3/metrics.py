"""The plugin's StyleGAN3 metrics, registered with `metric_main.register_metric` at import (train.py and
calc_metrics.py import this module through the plugin hook)."""

from metrics import metric_main  # noqa: F401
