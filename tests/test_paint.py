"""fpa-paint: the Fig. 5 layout and its pixels, the paper's normalisation, step subsets, the U-Net column,
animations (GIF frames, the MP4 pipe to ffmpeg), key maps, and the command line on pickled networks, including
clear errors for bad input."""

import json
import os
import pickle
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
import torch

from fpa_plugin.core.generator import FastWeightPainter, PaintingTrace
from fpa_plugin.tools import paint
from fpa_plugin.tools.paint import LABEL_HEIGHT, PAD

SMALL = dict(z_dim=16, hidden=32, layers=1, d_in=4, d_in_proj=8, steps=7)
H, W = 6, 5                                                         # not square: a transposed canvas shows


def small_generator(**kwargs):
    torch.manual_seed(0)
    return FastWeightPainter(height=H, width=W, channels=3, **{**SMALL, **kwargs}).eval()


def u8(x, scale=1):                                                 # (C, H, W) in [-1, 1] -> (H * s, W * s, 3)
    a = (x * 127.5 + 128).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    return np.kron(a, np.ones((scale, scale, 1), np.uint8))


def figure_cell(fig, b, col, row, h, w):
    """The cell of sample b, column col, mini-row row (0 = update, 1 = image) of a steps figure."""
    x = PAD + col * (w + PAD)
    y = PAD + b * (2 * h + 2 * PAD + LABEL_HEIGHT) + row * (h + PAD)
    return np.asarray(fig)[y:y + h, x:x + w]


def synthetic_trace(B=2, T=6, C=3, height=H, width=W, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.rand(*s, generator=g) * 2 - 1
    partials = r(B, T, C, height, width)
    return PaintingTrace(partials[:, -1], r(B, T, C, height, width), partials,
                         torch.softmax(r(B, T, C, width) * 5, -1), r(B, T, C, height), torch.rand(B, T, C))

#----------------------------------------------------------------------------
# Specifications.

def test_parse_seeds_and_steps():
    assert paint.parse_range('0-3,7') == [0, 1, 2, 3, 7]
    assert paint.select_steps(64, '1-16,32,64') == list(range(1, 17)) + [32, 64]
    assert paint.select_steps(64, '64,3,3') == [3, 64]
    assert paint.select_steps(5) == [1, 2, 3, 4, 5]
    assert paint.select_steps(8, every=4) == [4, 8]
    assert paint.select_steps(10, every=4) == [4, 8, 10]                # the final image is always shown
    assert paint.select_steps(3, every=5) == [3]
    for bad in ['0-3', '9', '5-3', 'a', '1,,2', '', '-1']:
        with pytest.raises(ValueError):
            paint.select_steps(8, bad)
    with pytest.raises(ValueError, match='not both'):
        paint.select_steps(8, '1', every=2)

#----------------------------------------------------------------------------
# Painting: latents as gen_images.py, the paper's normalisation.

def test_paint_seeds_uses_gen_images_latents_and_the_papers_normalisation():
    G = small_generator()
    seeds = [3, 5]
    z = paint.latents(seeds, 16)
    assert torch.equal(z[1], torch.from_numpy(np.random.RandomState(5).randn(16)))
    trace = paint.paint_seeds(G, seeds, batch=1)                    # two batches, joined
    raw = G.paint(z)                                                # without normalisation
    W_T = raw.updates.sum(dim=1)                                    # (B, C, H, W) the canvas before tanh
    scale = W_T.flatten(1).norm(dim=1)[:, None]                     # (B, 1) ||W_T|| of each sample
    for t in range(SMALL['steps']):
        d = raw.updates[:, t]
        expected = torch.tanh(d * (scale / d.flatten(1).norm(dim=1)[:, None])[..., None, None])
        torch.testing.assert_close(trace.updates[:, t], expected)
    torch.testing.assert_close(trace.partials[:, -1], trace.image)  # the last partial frame is the image
    torch.testing.assert_close(trace.image, torch.tanh(W_T))
    assert not torch.allclose(trace.partials[:, 0], raw.partials[:, 0])


def test_paint_seeds_conditional():
    G = small_generator(c_dim=3)
    a = paint.paint_seeds(G, [0, 1], torch.eye(3)[[0]])
    b = paint.paint_seeds(G, [0, 1], torch.eye(3)[[2]])
    assert not torch.allclose(a.image, b.image)

#----------------------------------------------------------------------------
# The Fig. 5 figure.

def test_steps_figure_layout_and_pixels():
    trace = paint.paint_seeds(small_generator(), [0, 1])
    T, s = SMALL['steps'], 3
    fig = paint.steps_figure(trace, list(range(1, T + 1)), scale=s)
    h, w = H * s, W * s
    assert fig.size == (PAD + T * (w + PAD), PAD + 2 * (2 * h + 2 * PAD + LABEL_HEIGHT))
    for b in range(2):
        for t in range(T):
            assert np.array_equal(figure_cell(fig, b, t, 0, h, w), u8(trace.updates[b, t], s))
            assert np.array_equal(figure_cell(fig, b, t, 1, h, w), u8(trace.partials[b, t], s))
        assert np.array_equal(figure_cell(fig, b, T - 1, 1, h, w), u8(trace.image[b], s))
        labels = np.asarray(fig)[PAD + 2 * h + PAD + b * (2 * h + 2 * PAD + LABEL_HEIGHT):][:LABEL_HEIGHT]
        assert (labels < 128).any()                                 # step numbers are written
    assert (np.asarray(fig)[:, PAD + w:PAD + w + PAD] == 255).all()  # the gap between columns


def test_steps_subset():
    trace = synthetic_trace(T=9)
    fig = paint.steps_figure(trace, [2, 5, 9], scale=1)
    assert fig.size == (PAD + 3 * (W + PAD), PAD + 2 * (2 * H + 2 * PAD + LABEL_HEIGHT))
    for col, t in enumerate([2, 5, 9]):
        assert np.array_equal(figure_cell(fig, 1, col, 0, H, W), u8(trace.updates[1, t - 1]))
        assert np.array_equal(figure_cell(fig, 1, col, 1, H, W), u8(trace.partials[1, t - 1]))


def test_unet_column():
    trace = synthetic_trace(T=4)
    refined = torch.tanh(torch.randn(trace.image.shape) * 2)
    unet = trace._replace(refined=refined)
    steps, s = [1, 2, 3, 4], 2
    h, w = H * s, W * s
    fig = paint.steps_figure(unet, steps, scale=s)
    assert fig.size == (PAD + 5 * (w + PAD), PAD + 2 * (2 * h + 2 * PAD + LABEL_HEIGHT))
    for b in range(2):
        diff = (refined[b] - trace.image[b]).clamp(-1, 1)
        assert np.array_equal(figure_cell(fig, b, 4, 0, h, w), u8(diff, s))
        assert np.array_equal(figure_cell(fig, b, 4, 1, h, w), u8(refined[b], s))
    hidden = paint.steps_figure(unet, steps, scale=s, unet_column=False)
    assert np.array_equal(np.asarray(hidden), np.asarray(paint.steps_figure(trace, steps, scale=s)))
    frames = paint.painting_frames(unet, steps, scale=s)
    assert len(frames) == 5
    assert np.array_equal(np.asarray(frames[-1])[PAD + h + PAD:][:h, PAD:PAD + w], u8(refined[0], s))
    assert len(paint.painting_frames(unet, steps, unet=False)) == 4


def test_grey_images():
    trace = synthetic_trace(C=1, T=2)
    cell = figure_cell(paint.steps_figure(trace, [1, 2]), 0, 1, 1, H, W)
    assert np.array_equal(cell, u8(trace.image[0].expand(3, -1, -1)))

#----------------------------------------------------------------------------
# Animations.

def test_gif_has_one_frame_per_step_shown(tmp_path):
    trace = synthetic_trace(T=6)
    s = 2
    frames = paint.painting_frames(trace, [1, 3, 4], scale=s)       # both samples side by side
    assert [f.size for f in frames] == [(PAD + 2 * (W * s + PAD), PAD + 2 * (H * s + PAD) + LABEL_HEIGHT)] * 3
    first = np.asarray(frames[0])
    assert np.array_equal(first[PAD:PAD + H * s, PAD:PAD + W * s], u8(trace.updates[0, 0], s))
    assert np.array_equal(first[2 * PAD + H * s:][:H * s, 2 * PAD + W * s:][:, :W * s], u8(trace.partials[1, 0], s))
    paint.save_gif(frames, tmp_path / 'a.gif')
    with PIL.Image.open(tmp_path / 'a.gif') as gif:
        assert (gif.n_frames, gif.size) == (3, frames[0].size)
    blank = trace._replace(updates=torch.zeros_like(trace.updates), partials=torch.zeros_like(trace.partials))
    frames = paint.painting_frames(blank, [1, 2, 3, 4, 5, 6], show_updates=False)
    assert frames[0].size == (PAD + 2 * (W + PAD), PAD + (H + PAD) + LABEL_HEIGHT)
    paint.save_gif(frames, tmp_path / 'b.gif')
    with PIL.Image.open(tmp_path / 'b.gif') as gif:
        assert gif.n_frames == 6                                    # Pillow merges identical frames: not these


def write_fake_ffmpeg(folder, rc=0):
    """An `ffmpeg` that records its arguments and how many bytes it was piped into the output file."""
    path = folder / 'ffmpeg'
    path.write_text(f'#!{sys.executable}\nimport sys, json\nn = len(sys.stdin.buffer.read())\n'
                    f'open(sys.argv[-1], "w").write(json.dumps(dict(args=sys.argv[1:], n=n)))\nsys.exit({rc})\n')
    path.chmod(0o755)
    return path


def test_mp4_pipes_every_frame_to_ffmpeg(tmp_path):
    frames = paint.painting_frames(synthetic_trace(T=5), [1, 2, 3, 4, 5], scale=1)
    paint.save_mp4(frames, tmp_path / 'a.mp4', fps=4, ffmpeg=str(write_fake_ffmpeg(tmp_path)))
    got = json.loads((tmp_path / 'a.mp4').read_text())
    w, h = frames[0].size
    assert got['n'] == 5 * w * h * 3
    assert f'{w}x{h}' in got['args'] and 'yuv420p' in got['args']
    bad = tmp_path / 'bad'
    bad.mkdir()
    with pytest.raises(RuntimeError, match='ffmpeg failed'):
        paint.save_mp4(frames, tmp_path / 'b.mp4', ffmpeg=str(write_fake_ffmpeg(bad, rc=1)))

#----------------------------------------------------------------------------
# Keys.

def test_keys_figure_and_sharpness():
    T, C, s = 8, 3, 2
    trace = synthetic_trace(T=T, C=C)
    one_hot = torch.zeros(2, T, C, W)
    for t in range(T):
        one_hot[:, t, :, t % W] = 1                                 # step t writes column t mod W
    trace = trace._replace(keys=one_hot)
    torch.testing.assert_close(paint.key_sharpness(trace), torch.ones(2))
    uniform = trace._replace(keys=torch.full((2, T, C, W), 1 / W))
    torch.testing.assert_close(paint.key_sharpness(uniform), torch.full((2,), 1 / W))
    steps = [2, 3, 7]
    figs = paint.keys_figures(trace, steps, scale=s)
    assert len(figs) == 2
    assert figs[0].size == (PAD + C * (W * s + PAD), 2 * PAD + len(steps) * s + LABEL_HEIGHT)
    a = np.asarray(figs[1]).astype(int)
    for c in range(C):
        panel = a[PAD:PAD + len(steps) * s, PAD + c * (W * s + PAD):][:, :W * s]   # (S * s, W * s, 3)
        for row, t in enumerate(steps):
            for col in range(W):
                px = panel[row * s, col * s]
                assert (px.sum() > 600) == (col == (t - 1) % W), (c, t, col, px)


def test_keys_figure_without_softmax():
    trace = synthetic_trace(T=3)
    trace = trace._replace(keys=-3 * trace.keys)                    # identity keys: any sign, any size
    fig = np.asarray(paint.keys_figures(trace, [1, 2, 3])[0])
    assert fig[PAD:PAD + 3, PAD:PAD + W].max() > 200                # the largest |k| is bright

#----------------------------------------------------------------------------
# The command line, on pickled networks.

@pytest.fixture(scope='module')
def pickles(stylegan3, tmp_path_factory):
    from fpa_plugin.stylegan3 import checkout
    checkout.import_host()
    from fpa_plugin.stylegan3.networks import FPAGenerator
    from training import networks_stylegan2
    folder = tmp_path_factory.mktemp('pickles')
    torch.manual_seed(0)
    G = FPAGenerator(z_dim=16, c_dim=0, img_resolution=16, img_channels=3, hidden=32, layers=1, d_in=4,
                     d_in_proj=8, steps=8)
    G_cond = FPAGenerator(z_dim=16, c_dim=3, img_resolution=16, img_channels=3, hidden=32, layers=1, d_in=4,
                          d_in_proj=8, steps=8)
    G_sg2 = networks_stylegan2.Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3,
                                         channel_base=256, channel_max=16, mapping_kwargs=dict(num_layers=1))
    paths = {}
    for name, net in [('fpa', G), ('cond', G_cond), ('sg2', G_sg2)]:
        paths[name] = folder / f'{name}.pkl'
        with open(paths[name], 'wb') as f:
            pickle.dump(dict(G=net, G_ema=net, D=torch.nn.Module()), f)  # legacy.py asserts D is a Module
    paths['garbage'] = folder / 'garbage.pkl'
    paths['garbage'].write_bytes(b'not a pickle at all')
    return G, paths


def fpa_paint(*args, path=None):
    env = None if path is None else dict(os.environ, PATH=str(path))
    return subprocess.run([sys.executable, '-m', 'fpa_plugin.tools.paint', *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300)


def test_cli_writes_figure_animations_and_keys(pickles, tmp_path):
    G, paths = pickles
    fake = tmp_path / 'bin'
    fake.mkdir()
    write_fake_ffmpeg(fake)
    out = tmp_path / 'out'
    proc = fpa_paint(f'--network={paths["fpa"]}', '--seeds=0-1', f'--outdir={out}', '--steps=1-3,8', '--scale=2',
                     path=fake)
    assert proc.returncode == 0, proc.stderr
    s, h, w = 2, 32, 32
    with PIL.Image.open(out / 'steps.png') as fig:
        assert fig.size == (PAD + 4 * (w + PAD), PAD + 2 * (2 * h + 2 * PAD + LABEL_HEIGHT))
        expected = paint.steps_figure(paint.paint_seeds(G, [0, 1]), [1, 2, 3, 8], scale=s)
        assert np.abs(np.asarray(fig.convert('RGB')).astype(int) - np.asarray(expected)).max() <= 1
    for seed in [0, 1]:
        with PIL.Image.open(out / f'paint-seed{seed:04d}.gif') as gif:
            assert (gif.n_frames, gif.size) == (4, (PAD + w + PAD, PAD + 2 * (h + PAD) + LABEL_HEIGHT))
        with PIL.Image.open(out / f'keys-seed{seed:04d}.png') as keys:
            assert keys.size == (PAD + 3 * (w + PAD), 2 * PAD + 4 * s + LABEL_HEIGHT)
        assert (out / f'paint-seed{seed:04d}.mp4').read_text().count('"n": ') == 1      # the fake ffmpeg ran
    assert proc.stdout.count('mean max key') == 2


def test_cli_side_by_side_without_ffmpeg(pickles, tmp_path):
    _, paths = pickles
    empty = tmp_path / 'bin'
    empty.mkdir()
    out = tmp_path / 'out'
    proc = fpa_paint(f'--network={paths["fpa"]}', '--seeds=0-2', f'--outdir={out}', '--every=4', '--scale=1',
                     '--side-by-side', '--no-keys', '--no-anim-updates', path=empty)
    assert proc.returncode == 0, proc.stderr
    assert 'ffmpeg is not on PATH' in proc.stdout
    assert sorted(p.name for p in out.iterdir()) == ['paint.gif', 'steps.png']
    with PIL.Image.open(out / 'paint.gif') as gif:
        assert (gif.n_frames, gif.size) == (2, (PAD + 3 * (16 + PAD), PAD + (16 + PAD) + LABEL_HEIGHT))


@pytest.mark.parametrize('case', ['missing', 'sg2', 'garbage', 'seeds', 'steps', 'steps-range', 'both', 'outdir',
                                  'class'])
def test_cli_errors(pickles, tmp_path, case):
    _, paths = pickles
    out = tmp_path / 'out'
    args = {'network': paths['fpa'], 'seeds': '0', 'outdir': out}
    extra, rc, message = [], 1, None
    if case == 'missing':
        args['network'], message = tmp_path / 'nowhere.pkl', 'No network pickle at'
    elif case == 'sg2':
        args['network'], message = paths['sg2'], 'not an FPA network pickle'
    elif case == 'garbage':
        args['network'], message = paths['garbage'], 'Could not load a network pickle'
    elif case == 'seeds':
        args['seeds'], rc, message = '1-a', 2, 'Bad seeds'
    elif case == 'steps':
        extra, rc, message = ['--steps=5-3'], 2, 'range 5-3 is empty'
    elif case == 'steps-range':
        extra, message = ['--steps=1-9'], 'paints steps 1 to 8'
    elif case == 'both':
        extra, rc, message = ['--steps=1-3', '--every=2'], 2, 'not both'
    elif case == 'outdir':
        (tmp_path / 'file').write_text('')
        args['outdir'], message = tmp_path / 'file' / 'out', 'Cannot write to the output folder'
    elif case == 'class':
        args['network'], message = paths['cond'], 'Must specify class label'
    proc = fpa_paint(*[f'--{k}={v}' for k, v in args.items()], *extra)
    assert proc.returncode == rc, (proc.stdout, proc.stderr)
    assert message in proc.stderr and 'Traceback' not in proc.stderr, proc.stderr
    assert not out.exists()                                         # a failed run leaves no output folder
