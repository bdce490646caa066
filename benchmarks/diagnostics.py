"""Health of a snapshot: the numbers that diagnosed the CPU study's collapses (issue: study), for any pickle.

    python -m benchmarks.diagnostics --network=runs/.../network-snapshot-000016.pkl [--data=data.zip] [--n=64]

For G and G_ema: the spread of the image across z (std over `--n` latents, mean over pixels: ~0 means every z paints
the same picture, i.e. total collapse), near-duplicates (the mean distance from each image to its nearest other
image, over the median distance between two images: ~0 when the images fall into a few modes, partial collapse,
which the spread does not show; a LightGAN G at 16 kimg of the study: 0.58), and for an FPA the LSTM's hidden state
(mean |h|, the share of units with |h| > 0.95: saturation) and how sharp the keys are (mean over steps of the
largest softmax key entry: 1 for one-hot keys, 1/width for uniform ones), and the PSNR of its images under bf16
autocast against float32. For D: the norm of its input gradient (both heads summed, as in the gradient penalty,
which pulls it towards 1) on a flat grey image and, with --data, on real images.
"""

import argparse
import pickle

import numpy as np
import torch

#----------------------------------------------------------------------------

def generator_health(G, n, seed=0):
    z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed))
    c = torch.zeros(n, G.c_dim)
    with torch.no_grad():
        images = G(z, c)
        row = {'spread across z': images.std(0).mean().item(), 'NN / median dist': nearest_over_median(images)}
        fpa = getattr(G, 'fpa', None)
        if fpa is not None:
            h = fpa.hidden_states(fpa.latent(z, c)).abs()                # (T, n, H)
            keys = fpa.paint(z, c).keys                                   # (n, T, C, W)
            row.update({'mean |h|': h.mean().item(), '|h| > 0.95': (h > 0.95).float().mean().item(),
                        'mean max key': keys.max(dim=-1).values.mean().item(),
                        'uniform key': 1 / keys.shape[-1], 'bf16 PSNR dB': bf16_psnr(G, fpa, z, c, images)})
    return row


def bf16_psnr(G, fpa, z, c, images):
    """PSNR (dB, images in [-1, 1]) of G's images with the FPA's LSTM and projections under bf16 autocast
    (--fpa-amp=bfloat16; the painter stays float32) against float32 throughout. `images`: G(z, c) as G is set.
    8-bit quantisation alone: 10 log10(4 / ((2/255)^2 / 12)) = 58.9 dB."""
    amp = fpa.amp
    try:
        if amp is not None:                                             # `images` are not float32 ones: paint them
            fpa.amp = None
            images = G(z, c)
        fpa.amp = 'bfloat16'
        mse = (G(z, c) - images).square().mean().item()
    finally:
        fpa.amp = amp
    return 10 * np.log10(4 / max(mse, 1e-20))


def nearest_over_median(images):
    """Mean distance from each image to its nearest other image, over the median distance of two images."""
    d = torch.cdist(images.flatten(1)[None].double(), images.flatten(1)[None].double())[0]
    median = d[~torch.eye(len(d), dtype=torch.bool)].median()
    d.fill_diagonal_(float('inf'))
    return (d.min(dim=1).values.mean() / median).item() if median > 0 else 0.0


def input_gradient_norm(D, images):
    """Per-image norm of d(sum of both heads)/d(image), averaged: what the gradient penalty sees."""
    x = images.detach().requires_grad_(True)
    logits, logits32, _ = D.heads(x, torch.zeros(len(x), D.c_dim))
    grad, = torch.autograd.grad(logits.sum() + logits32.sum(), x)
    return grad.flatten(1).norm(dim=1).mean().item()


def real_images(path, n, resolution):                                   # (StyleGAN3 on the path: see main)
    from training.dataset import ImageFolderDataset
    data = ImageFolderDataset(path, max_size=n, random_seed=0)
    if data.resolution != resolution:
        raise SystemExit(f'--data is {data.resolution}x{data.resolution}, the network {resolution}x{resolution}')
    return torch.from_numpy(np.stack([data[i][0] for i in range(len(data))])).float() / 127.5 - 1

#----------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--network', required=True, help='a network-snapshot-*.pkl of this plugin')
    parser.add_argument('--data', help='the training data (dataset zip): D input gradient on real images too')
    parser.add_argument('--n', type=int, default=64, help='latents (and real images) to measure on')
    args = parser.parse_args()
    from fpa_plugin.stylegan3 import checkout
    checkout.import_host()                                                # the pickle refers to StyleGAN3 modules
    with open(args.network, 'rb') as f:
        snap = pickle.load(f)

    rows = {key: generator_health(snap[key].eval(), args.n) for key in ['G', 'G_ema']}
    print(f'{args.network}\n\n{"":<8}' + ''.join(f'{k:>17}' for k in rows['G']))
    for key, row in rows.items():
        print(f'{key:<8}' + ''.join(f'{v:17.4f}' for v in row.values()))

    D = snap['D'].eval()
    if hasattr(D, 'heads'):
        res = D.img_resolution
        print(f'\nD input-gradient norm (both heads; the penalty pulls it towards 1):')
        print(f'  flat grey image  {input_gradient_norm(D, torch.zeros(args.n, D.img_channels, res, res)):8.2f}')
        if args.data:
            print(f'  real images      {input_gradient_norm(D, real_images(args.data, args.n, res)):8.2f}')


if __name__ == '__main__':
    main()
