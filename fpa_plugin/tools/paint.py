"""`fpa-paint`: watch a Fast Weight Painter paint, step by step (paper Fig. 5, Sec. 4.2; Appendix C.1, Fig. 9).

From a StyleGAN3 network pickle of an FPA generator and some seeds, it writes to `--outdir`:

    steps.png               per seed, two mini-rows over the steps (Fig. 5): the rank-1 update of each step above
                            the image after it, step numbers below; with the paper's normalisation (each frame
                            scaled to the norm of the final canvas W_T, then tanh). A generator with a U-Net gets
                            an extra column: refined minus painted image above the refined image (Fig. 9).
    paint-seedNNNN.gif      the painting, one frame per step shown (and one for the U-Net); .mp4 as well where
                            ffmpeg is on PATH. With --side-by-side, one paint.gif/.mp4 with all seeds.
    keys-seedNNNN.png       heat maps of the keys phi(k_t), steps x width, one panel per channel: which columns
                            each step writes (the softmax keys are often near one-hot, Sec. 4.2).

and prints, per seed, the mean over steps and channels of the largest key entry (1 = one-hot, 1/width = uniform).
The rendering functions take a PaintingTrace and return PIL images; only the loading code needs StyleGAN3.
"""

import functools
import os
import re
import shutil
import subprocess
import tempfile

import click
import numpy as np
import PIL.Image
import PIL.ImageDraw
import PIL.ImageFont
import torch

from fpa_plugin.core.generator import PaintingTrace

PAD = 2                         # Pixels between cells and around the border.
LABEL_HEIGHT = 12               # Height of a strip of labels (step numbers, channel names).
FONT_SIZE = 10
BACKGROUND = 255                # White, as the paper's figures.
UNET_LABELS = ('U-Net', 'U')    # The U-Net column's label, then shorter ones for narrow cells.

#----------------------------------------------------------------------------
# Parsing the seed and step specifications.

def parse_range(spec, what='seeds'):
    """'0-3,7' -> [0, 1, 2, 3, 7], as StyleGAN3's gen_images.py; ValueError naming `what` if malformed."""
    values = []
    for part in str(spec).split(','):
        m = re.fullmatch(r'\s*(\d+)\s*(?:-\s*(\d+)\s*)?', part)
        if m is None:
            raise ValueError(f'Bad {what} {spec!r}: expected numbers and ranges like 0-3,7')
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise ValueError(f'Bad {what} {spec!r}: the range {lo}-{hi} is empty')
        values.extend(range(lo, hi + 1))
    return values


def select_steps(T, steps=None, every=None):
    """The 1-based steps to show, sorted: all T, those of a spec ('1-16,32,64'), or every n-th (and the last)."""
    if steps is not None and every is not None:
        raise ValueError('Give --steps or --every, not both')
    if every is not None:
        if every < 1:
            raise ValueError(f'--every must be at least 1, not {every}')
        chosen = list(range(every, T + 1, every))
        return chosen if chosen and chosen[-1] == T else chosen + [T]
    if steps is None:
        return list(range(1, T + 1))
    chosen = sorted(set(parse_range(steps, 'steps')))
    if chosen[0] < 1 or chosen[-1] > T:
        raise ValueError(f'Bad steps {steps!r}: this generator paints steps 1 to {T}')
    return chosen

#----------------------------------------------------------------------------
# Pixels: images in [-1, 1] to uint8 as gen_images.py does, nearest upscaling, labels.

def to_uint8(x):                                                    # (..., C, H, W) in [-1, 1] -> (..., H, W, 3)
    if x.shape[-3] not in (1, 3):
        raise ValueError(f'Can show images of 1 or 3 channels, not {x.shape[-3]}')
    x = (x.float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    x = x.expand(*x.shape[:-3], 3, *x.shape[-2:])                   # grey -> RGB
    return x.movedim(-3, -1).cpu().numpy()


def upscale(a, scale):                                              # (H, W, ...) -> (H * scale, W * scale, ...)
    return a.repeat(scale, axis=0).repeat(scale, axis=1)


@functools.lru_cache(maxsize=None)
def _font():
    try:
        return PIL.ImageFont.load_default(size=FONT_SIZE)
    except TypeError:                                               # Pillow < 10.1: the fixed bitmap font
        return PIL.ImageFont.load_default()


def _label(draw, candidates, x, y, width):
    """Write the first of `candidates` that fits in `width` (else the last) centred in the strip at (x, y)."""
    font = _font()
    for text in candidates:
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        if right - left <= width:
            break
    draw.text((x + (width - (right - left)) / 2 - left, y + (LABEL_HEIGHT - (bottom - top)) / 2 - top), text,
              fill=(0, 0, 0), font=font)


def _columns(trace, steps, unet):
    """Per shown column: (updates, images, labels) with updates and images (B, C, H, W) in [-1, 1]."""
    cols = [(trace.updates[:, t - 1], trace.partials[:, t - 1], (str(t),)) for t in steps]
    if unet and trace.refined is not None:                          # Fig. 9: what the U-Net changes, its result
        cols.append(((trace.refined - trace.image).clamp(-1, 1), trace.refined, UNET_LABELS))
    return cols

#----------------------------------------------------------------------------
# The figures.

def steps_figure(trace, steps, scale=1, unet_column=True):
    """Fig. 5: per sample, the update of each step in `steps` above the image after it, step numbers below.

    The trace should come from `paint(..., normalise=True)`. With `trace.refined` and `unet_column`, a last
    column shows the refined minus the painted image above the refined image.
    """
    cols = _columns(trace, steps, unet_column)
    B, _, H, W = trace.image.shape
    h, w = H * scale, W * scale
    block = 2 * h + 2 * PAD + LABEL_HEIGHT                          # one sample: two mini-rows and a label strip
    canvas = np.full((PAD + B * block, PAD + len(cols) * (w + PAD), 3), BACKGROUND, np.uint8)
    for j, (updates, images, _) in enumerate(cols):
        x = PAD + j * (w + PAD)
        for b, (u, p) in enumerate(zip(to_uint8(updates), to_uint8(images))):
            y = PAD + b * block
            canvas[y:y + h, x:x + w] = upscale(u, scale)
            canvas[y + h + PAD:y + 2 * h + PAD, x:x + w] = upscale(p, scale)
    img = PIL.Image.fromarray(canvas)
    draw = PIL.ImageDraw.Draw(img)
    for b in range(B):
        for j, (_, _, labels) in enumerate(cols):
            _label(draw, labels, PAD + j * (w + PAD), PAD + b * block + 2 * h + PAD, w)
    return img


def painting_frames(trace, steps, scale=1, show_updates=True, unet=True):
    """The animation: one frame per step in `steps` (then one for the U-Net), all samples side by side, each
    the image after the step, below the step's update if `show_updates`; the step number underneath."""
    cols = _columns(trace, steps, unet)
    B, _, H, W = trace.image.shape
    h, w = H * scale, W * scale
    rows = 2 if show_updates else 1
    frames = []
    for updates, images, labels in cols:
        canvas = np.full((PAD + rows * (h + PAD) + LABEL_HEIGHT, PAD + B * (w + PAD), 3), BACKGROUND, np.uint8)
        for b, (u, p) in enumerate(zip(to_uint8(updates), to_uint8(images))):
            x = PAD + b * (w + PAD)
            if show_updates:
                canvas[PAD:PAD + h, x:x + w] = upscale(u, scale)
            y = PAD + (rows - 1) * (h + PAD)
            canvas[y:y + h, x:x + w] = upscale(p, scale)
        img = PIL.Image.fromarray(canvas)
        # Distinct labels keep every frame distinct: Pillow merges identical consecutive GIF frames.
        _label(PIL.ImageDraw.Draw(img), labels, 0, PAD + rows * h + (rows - 1) * PAD, img.width)
        frames.append(img)
    return frames


def _colormap(x):                                                   # x (...) in [0, 1] -> (..., 3) uint8
    anchors = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], np.float64)
    pos = np.linspace(0, 1, len(anchors))
    return np.stack([np.interp(x, pos, anchors[:, i]) for i in range(3)], axis=-1).round().astype(np.uint8)


def keys_figures(trace, steps, scale=1):
    """Per sample, a heat map of its keys: one panel per channel, a row per step in `steps`, a column per image
    column. Keys in [0, 1] (softmax) are shown as they are, so one-hot is bright; others as |k| / max |k|."""
    keys = trace.keys[:, [t - 1 for t in steps]].float().cpu()     # (B, S, C, W)
    B, S, C, W = keys.shape
    names = ('R', 'G', 'B') if C == 3 else tuple(f'c{i}' for i in range(C))
    figures = []
    for k in keys:
        if k.min() < 0 or k.max() > 1 + 1e-6:
            k = k.abs() / k.abs().amax(dim=(0, 2), keepdim=True).clamp_min(1e-12)
        canvas = np.full((2 * PAD + S * scale + LABEL_HEIGHT, PAD + C * (W * scale + PAD), 3), BACKGROUND, np.uint8)
        for i in range(C):
            x = PAD + i * (W * scale + PAD)
            canvas[PAD:PAD + S * scale, x:x + W * scale] = upscale(_colormap(k[:, i].numpy()), scale)
        img = PIL.Image.fromarray(canvas)
        draw = PIL.ImageDraw.Draw(img)
        for i in range(C):
            _label(draw, (names[i],), PAD + i * (W * scale + PAD), PAD + S * scale + PAD, W * scale)
        figures.append(img)
    return figures


def key_sharpness(trace, steps=None):
    """How one-hot the keys are: per sample, the mean over steps and channels of the largest key entry (B,)."""
    keys = trace.keys if steps is None else trace.keys[:, [t - 1 for t in steps]]
    return keys.float().amax(dim=-1).mean(dim=(1, 2))

#----------------------------------------------------------------------------
# Traces: slicing and joining along the batch.

def select(trace, index):
    """The samples `index` (a slice or index list) of a trace."""
    return PaintingTrace(*(None if x is None else x[index] for x in trace))


def concatenate(traces):
    return PaintingTrace(*(None if parts[0] is None else torch.cat(parts) for parts in zip(*traces)))

#----------------------------------------------------------------------------
# Animations: GIF with Pillow; MP4 through an ffmpeg on PATH.

def save_gif(frames, path, fps=8, hold_ms=1000):
    """Write the frames as a looping GIF; the last one stays `hold_ms` (at least one frame's time)."""
    ms = round(1000 / fps)
    durations = [ms] * (len(frames) - 1) + [max(ms, hold_ms)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=durations, loop=0)


def find_ffmpeg():
    return shutil.which('ffmpeg')


def save_mp4(frames, path, fps=8, ffmpeg=None):
    """Pipe the frames to ffmpeg (its default MP4 encoder; padded to even sizes); RuntimeError if it fails."""
    ffmpeg = ffmpeg or find_ffmpeg()
    if ffmpeg is None:
        raise RuntimeError('ffmpeg is not on PATH')
    w, h = frames[0].size
    cmd = [ffmpeg, '-y', '-loglevel', 'error', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', f'{w}x{h}',
           '-r', str(fps), '-i', '-', '-vf', 'pad=ceil(iw/2)*2:ceil(ih/2)*2:color=white', '-pix_fmt', 'yuv420p',
           str(path)]
    data = b''.join(np.asarray(f.convert('RGB')).tobytes() for f in frames)
    try:
        proc = subprocess.run(cmd, input=data, capture_output=True)
    except OSError as err:
        raise RuntimeError(f'could not run {ffmpeg}: {err}') from None
    if proc.returncode != 0:
        raise RuntimeError(f'ffmpeg failed ({proc.returncode}): {proc.stderr.decode(errors="replace").strip()}')

#----------------------------------------------------------------------------
# Loading and painting (the host's side).

def load_generator(network, device):
    """G_ema of a StyleGAN3 network pickle (a path or URL); click.ClickException unless it is an FPA generator."""
    from fpa_plugin.stylegan3 import checkout
    try:
        checkout.import_host()
    except checkout.CheckoutError as err:
        raise click.ClickException(str(err)) from None
    import dnnlib
    import legacy
    if '://' not in network and not os.path.isfile(network):
        raise click.ClickException(f'No network pickle at {network}')
    try:
        with dnnlib.util.open_url(network) as f:
            G = legacy.load_network_pkl(f)['G_ema']
    except Exception as err:                                        # noqa: BLE001  (whatever the file holds)
        raise click.ClickException(f'Could not load a network pickle from {network}: '
                                   f'{type(err).__name__}: {err}') from None
    if not callable(getattr(G, 'paint', None)):
        raise click.ClickException(f'{network} is not an FPA network pickle: its generator '
                                   f'({type(G).__name__}) has no paint() method')
    return G.eval().requires_grad_(False).to(device)


def latents(seeds, z_dim):                                          # -> (len(seeds), z_dim) float64, as gen_images
    return torch.from_numpy(np.concatenate([np.random.RandomState(s).randn(1, z_dim) for s in seeds]))


def paint_seeds(G, seeds, label=None, truncation_psi=1, device='cpu', batch=16):
    """The normalised painting trace (Fig. 5) of every seed, on the CPU."""
    z = latents(seeds, G.z_dim).to(device)
    traces = []
    for i in range(0, len(seeds), batch):
        c = None if label is None else label.to(device).expand(len(z[i:i + batch]), -1)
        trace = G.paint(z[i:i + batch], c, truncation_psi=truncation_psi, normalise=True)
        traces.append(PaintingTrace(*(None if x is None else x.cpu() for x in trace)))
    return concatenate(traces)

#----------------------------------------------------------------------------
# The command line.

def _seeds_option(ctx, param, value):
    try:
        seeds = parse_range(value, 'seeds')
    except ValueError as err:
        raise click.BadParameter(str(err)) from None
    if max(seeds) >= 2**32:
        raise click.BadParameter(f'Seeds must be below 2**32, not {max(seeds)}')
    return seeds


def _check_steps_option(ctx, param, value):
    if value is not None:
        try:
            parse_range(value, 'steps')
        except ValueError as err:
            raise click.BadParameter(str(err)) from None
    return value


def _writable_dir(path):
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise click.ClickException(f'Cannot write to the output folder {path}: {err.strerror or err}') from None


@click.command()
@click.option('--network', 'network_pkl', required=True, help='Network pickle filename or URL')
@click.option('--seeds', required=True, callback=_seeds_option, help='Random seeds (e.g. 0-3,7)')
@click.option('--outdir', required=True, metavar='DIR', help='Where to save the output images')
@click.option('--trunc', 'truncation_psi', type=float, default=1, show_default=True, help='Truncation psi')
@click.option('--class', 'class_idx', type=int, help='Class label (unconditional if not specified)')
@click.option('--steps', callback=_check_steps_option, help='Steps to show, 1-based (e.g. 1-16,32,64)  [default: all]')
@click.option('--every', type=click.IntRange(min=1), help='Show every n-th step (and the last)')
@click.option('--scale', type=click.IntRange(min=1), default=2, show_default=True, help='Upscaling factor (nearest)')
@click.option('--unet-column/--no-unet-column', default=True, show_default=True,
              help="The U-Net's before/after column (generators with a U-Net)")
@click.option('--gif/--no-gif', default=True, show_default=True, help='Write a GIF animation')
@click.option('--mp4/--no-mp4', default=True, show_default=True, help='Write an MP4 animation (needs ffmpeg)')
@click.option('--keys/--no-keys', default=True, show_default=True, help='Write the key heat maps')
@click.option('--side-by-side', is_flag=True, help='One animation with all seeds side by side')
@click.option('--anim-updates/--no-anim-updates', default=True, show_default=True,
              help="Show each step's update above the image in the animations")
@click.option('--fps', type=click.FloatRange(min=0.1), default=8, show_default=True, help='Animation frame rate')
@click.option('--device', default='auto', show_default=True, help='cpu, cuda, ...; auto: cuda if available')
def main(network_pkl, outdir, **opts):
    """Show how a Fast Weight Painter paints: the rank-1 update and the image after every step (paper Fig. 5),
    animations of the painting, and the keys (which columns each step writes).

    \b
    Examples:
    fpa-paint --network=network-snapshot.pkl --seeds=0-3 --outdir=out --steps=1-16,32,64 --scale=3
    fpa-paint --network=network-snapshot.pkl --seeds=0-7 --outdir=out --every=4 --side-by-side
    """
    if opts['steps'] is not None and opts['every'] is not None:
        raise click.UsageError('Give --steps or --every, not both')
    if '://' not in network_pkl and not os.path.isfile(network_pkl):
        raise click.ClickException(f'No network pickle at {network_pkl}')
    created = not os.path.exists(outdir)
    _writable_dir(outdir)
    try:
        _paint(network_pkl, outdir, **opts)
    except click.ClickException:
        if created and not os.listdir(outdir):                      # leave nothing behind on a clean failure
            os.rmdir(outdir)
        raise


def _paint(network_pkl, outdir, seeds, truncation_psi, class_idx, steps, every, scale, unet_column, gif, mp4, keys,
           side_by_side, anim_updates, fps, device):
    try:
        device = torch.device(('cuda' if torch.cuda.is_available() else 'cpu') if device == 'auto' else device)
    except RuntimeError as err:
        raise click.ClickException(f'Bad --device: {err}') from None

    click.echo(f'Loading networks from "{network_pkl}"...')
    G = load_generator(network_pkl, device)
    label = None
    if G.c_dim != 0:
        if class_idx is None:
            raise click.ClickException('Must specify class label with --class when using a conditional network')
        if not 0 <= class_idx < G.c_dim:
            raise click.ClickException(f'--class must be in 0..{G.c_dim - 1} for this network, not {class_idx}')
        label = torch.zeros([1, G.c_dim])
        label[:, class_idx] = 1
    elif class_idx is not None:
        click.echo('warn: --class=lbl ignored when running on an unconditional network')

    click.echo(f'Painting {len(seeds)} seed{"s" * (len(seeds) != 1)}...')
    trace = paint_seeds(G, seeds, label, truncation_psi, device)
    T = trace.updates.shape[1]
    try:
        shown = select_steps(T, steps, every)
    except ValueError as err:
        raise click.ClickException(str(err)) from None

    path = os.path.join(outdir, 'steps.png')
    steps_figure(trace, shown, scale, unet_column).save(path)
    click.echo(f'Wrote {path}')

    ffmpeg = find_ffmpeg() if mp4 else None
    if mp4 and ffmpeg is None:
        click.echo('ffmpeg is not on PATH: skipping the MP4 animations (install ffmpeg to get them)')
    if gif or ffmpeg:
        groups = [('paint', trace)] if side_by_side else [(f'paint-seed{s:04d}', select(trace, [i]))
                                                           for i, s in enumerate(seeds)]
        for name, part in groups:
            frames = painting_frames(part, shown, scale, anim_updates, unet_column)
            if gif:
                save_gif(frames, os.path.join(outdir, f'{name}.gif'), fps)
                click.echo(f'Wrote {os.path.join(outdir, name)}.gif ({len(frames)} frames)')
            if ffmpeg:
                try:
                    save_mp4(frames, os.path.join(outdir, f'{name}.mp4'), fps, ffmpeg)
                    click.echo(f'Wrote {os.path.join(outdir, name)}.mp4')
                except RuntimeError as err:
                    click.echo(f'warn: no MP4 ({err}); skipping the MP4 animations')
                    ffmpeg = None

    if keys:
        W = trace.keys.shape[-1]
        for s, fig, sharp in zip(seeds, keys_figures(trace, shown, scale), key_sharpness(trace).tolist()):
            path = os.path.join(outdir, f'keys-seed{s:04d}.png')
            fig.save(path)
            click.echo(f'seed {s}: mean max key over the {T} steps {sharp:.3f} (1 = one-hot, 1/{W} = {1 / W:.3f} '
                       f'= uniform); wrote {path}')

#----------------------------------------------------------------------------

if __name__ == '__main__':
    main()

#----------------------------------------------------------------------------
