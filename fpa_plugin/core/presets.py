"""Named FPA generator configurations, stored as JSON in `training_configs/presets/`.

The paper's six datasets (Table 3; T = 64 at 64x64) and a tiny CPU preset. A preset gives FastWeightPainter
keyword arguments except the image size, which comes from the data; `steps: null` means T = image width.
"""

import json
from importlib import resources


def _folder():
    return resources.files('fpa_plugin.training_configs') / 'presets'


def list_presets():
    return sorted(p.name[:-5] for p in _folder().iterdir() if p.name.endswith('.json'))


def load_preset(name):
    """The preset's JSON as a dict: `description`, `generator` (kwargs) and, for the paper's, `paper`."""
    path = _folder() / f'{name}.json'
    if not path.is_file():
        raise ValueError(f'Unknown FPA preset {name!r}: choose one of {", ".join(list_presets())}')
    return json.loads(path.read_text())


def generator_kwargs(name, width, height=None, channels=3, **overrides):
    """FastWeightPainter kwargs for a preset at an image size; `overrides` that are not None win."""
    kwargs = dict(load_preset(name)['generator'], width=width, height=height or width, channels=channels)
    kwargs.update({k: v for k, v in overrides.items() if v is not None})
    if kwargs.get('steps') is None:
        kwargs['steps'] = width
    return kwargs
