"""The plugin's StyleGAN3 metrics, registered with `metric_main.register_metric` when imported (train.py and
calc_metrics.py import this module through the plugin hook).

The paper's FID protocol (Appendix B.4; reference doc section 5): generated and real images are saved as JPEG
(PIL's default quality, 75) before the Inception network. Here every image, real or generated, makes an
in-memory encode/decode round trip through the codec just before StyleGAN3's own detector; everything else is
StyleGAN3's FID code. PNG is lossless, so the `_png` metrics equal the plain ones (the tests check it).

    fid50k_full_jpeg / fid50k_full_png   the paper's Table 1 / Table 4 protocol (50k generated, all reals)
    fid10k_full_jpeg                      the reference code's monitoring during training
    fid5k_full, fid5k_full_jpeg           quick monitoring for small (CPU) runs
    fid2k_full, fid1k_full                the CPU-scale study (benchmarks/study.py): biased but cheap
"""

import io

import numpy as np
import PIL.Image
import scipy.linalg
import torch

from metrics import metric_main, metric_utils

from fpa_plugin.stylegan3.fid_net import INCEPTION_URL

#----------------------------------------------------------------------------

def codec_round_trip(images, codec, quality=75):
    """uint8 images (N, C, H, W) -> the same after encoding to `codec` ('jpeg' or 'png') and decoding."""
    out = []
    for img in images.permute(0, 2, 3, 1).cpu().numpy():
        pil = PIL.Image.fromarray(img[:, :, 0] if img.shape[2] == 1 else img)
        buf = io.BytesIO()
        pil.save(buf, format=codec.upper(), **(dict(quality=quality) if codec == 'jpeg' else {}))
        dec = np.asarray(PIL.Image.open(io.BytesIO(buf.getvalue())))
        out.append(dec.reshape(img.shape))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).to(images.device)


class CodecDetector(torch.nn.Module):
    """A feature detector that sees images after a codec round trip."""
    def __init__(self, detector, codec):
        super().__init__()
        self.detector, self.codec = detector, codec

    def forward(self, images, **kwargs):
        return self.detector(codec_round_trip(images, self.codec), **kwargs)


def codec_detector_url(opts, codec):
    """A detector URL for StyleGAN3's metric code that means 'the FID Inception behind `codec`'. The wrapped
    detector is put in metric_utils' detector cache, so nothing is downloaded for it; its distinct URL keeps the
    cached real-image statistics of each codec apart."""
    url = f'{INCEPTION_URL}#{codec}'
    key = (url, opts.device)
    if key not in metric_utils._feature_detector_cache:
        base = metric_utils.get_feature_detector(INCEPTION_URL, device=opts.device, num_gpus=opts.num_gpus,
                                                 rank=opts.rank, verbose=opts.progress.verbose)
        metric_utils._feature_detector_cache[key] = CodecDetector(base, codec)
    return url


def compute_fid(opts, max_real, num_gen, codec=None):
    """StyleGAN3's FID (frechet_inception_distance.compute_fid) with an optional codec in front of the detector."""
    url = INCEPTION_URL if codec is None else codec_detector_url(opts, codec)
    kwargs = dict(return_features=True)
    mu_real, sigma_real = metric_utils.compute_feature_stats_for_dataset(opts=opts, detector_url=url,
        detector_kwargs=kwargs, rel_lo=0, rel_hi=0, capture_mean_cov=True, max_items=max_real).get_mean_cov()
    mu_gen, sigma_gen = metric_utils.compute_feature_stats_for_generator(opts=opts, detector_url=url,
        detector_kwargs=kwargs, rel_lo=0, rel_hi=1, capture_mean_cov=True, max_items=num_gen).get_mean_cov()
    if opts.rank != 0:
        return float('nan')
    m = np.square(mu_gen - mu_real).sum()
    s, _ = scipy.linalg.sqrtm(np.dot(sigma_gen, sigma_real), disp=False)
    return float(np.real(m + np.trace(sigma_gen + sigma_real - s * 2)))

#----------------------------------------------------------------------------

def _register(name, num_gen, codec):
    def metric(opts):
        opts.dataset_kwargs.update(max_size=None, xflip=False)         # all reals, no flips
        return {name: compute_fid(opts, max_real=None, num_gen=num_gen, codec=codec)}
    metric.__name__ = name                                              # StyleGAN3 registers metrics by name
    metric_main.register_metric(metric)


for _name, _num_gen, _codec in [('fid50k_full_jpeg', 50000, 'jpeg'), ('fid50k_full_png', 50000, 'png'),
                                ('fid10k_full_jpeg', 10000, 'jpeg'), ('fid5k_full_jpeg', 5000, 'jpeg'),
                                ('fid5k_full', 5000, None), ('fid2k_full', 2000, None),
                                ('fid1k_full', 1000, None)]:
    _register(_name, _num_gen, _codec)

#----------------------------------------------------------------------------
