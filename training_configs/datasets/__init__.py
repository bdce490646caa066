"""The default datasets: Noto Emoji faces, people and animals on white, as StyleGAN3 zips at 32x32 and 64x64.

Labels 0 = face, 1 = person, 2 = animal (in dataset.json, so conditional runs work too). Built by
`python -m fpa_plugin.training_configs.datasets.build_emoji`; provenance and licences in NOTICE.md.
"""

import importlib.resources
from pathlib import Path

RESOLUTIONS = (32, 64)
CLASS_NAMES = ('face', 'person', 'animal')                              # index = class label


def zip_name(resolution):
    return f'emoji-{resolution}x{resolution}.zip'


def default_dataset(resolution=32):
    """Path of the installed default dataset (a StyleGAN3 zip) at `resolution` (32 or 64)."""
    if resolution not in RESOLUTIONS:
        raise ValueError(f'No default dataset at resolution {resolution}; there are {RESOLUTIONS}')
    path = Path(str(importlib.resources.files(__name__) / zip_name(resolution)))
    if not path.is_file():
        raise FileNotFoundError(f'The default dataset {path} is missing; rebuild it with '
                                f'`python -m fpa_plugin.training_configs.datasets.build_emoji`')
    return path
