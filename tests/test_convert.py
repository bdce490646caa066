"""fpa-convert: the authors' checkpoints (tiny ones made with their own classes, tests/fixtures/reference) become
StyleGAN3 pickles whose generators reproduce the reference's images for the same z (float32 and float64), whose D
scores minus the reference's, and that gen_images.py and fpa-paint take; unknown or mismatched checkpoints fail
with a clear error naming the keys."""

import copy
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

from conftest import run_host
from fpa_plugin.tools import convert

FIXTURES = Path(__file__).parent / 'fixtures' / 'reference'
# What each fixture was made with that its weights do not show (make_fixtures.py), as fpa-convert options.
OPTIONS = {
    'lstm_delta_split_v2': ['--input-tanh'],                            # --v2_input_sigmoid
    'lstm_delta': ['--steps=8', '--no-out-tanh'],                       # T = 8, trained without --out_tanh
    'lstm_delta_split_v2_unet': [],
    'lstm_delta_unet': ['--steps=8'],
}
F32, F64 = 1e-5, 1e-10                                                  # max abs difference allowed

#----------------------------------------------------------------------------

@pytest.fixture(scope='session')
def checkpoints(tmp_path_factory):
    """Folder with <model_type>/model_0.pt for each fixture."""
    root = tmp_path_factory.mktemp('reference-checkpoints')
    with tarfile.open(FIXTURES / 'checkpoints.tar.xz') as tar:
        kwargs = dict(filter='data') if hasattr(tarfile, 'data_filter') else {}   # Python >= 3.11.4 / 3.12
        tar.extractall(root, **kwargs)
    return root


@pytest.fixture(scope='session')
def expected():
    return torch.load(FIXTURES / 'expected.pt')


def run_convert(*args):
    """fpa-convert in this process -> click's Result."""
    return CliRunner().invoke(convert.main, [str(a) for a in args])


def converted(stylegan3, checkpoints, tmp_path, name, *extra):
    """Convert a fixture (with its options) and load the pickle with StyleGAN3's legacy loader."""
    dest = tmp_path / f'{name}.pkl'
    result = run_convert(f'--source={checkpoints / name / "model_0.pt"}', f'--dest={dest}', *OPTIONS[name], *extra)
    assert result.exit_code == 0, result.output + repr(result.exception)
    sys.path.insert(0, str(stylegan3))
    import legacy
    with open(dest, 'rb') as f:
        return legacy.load_network_pkl(f), result.output


def assert_close(actual, expected, tol, what):
    diff = (actual.double() - expected.double()).abs().max().item()
    assert diff < tol, f'{what}: max abs difference {diff:.3g} (allowed {tol:g})'

#----------------------------------------------------------------------------
# The round trip.

@pytest.mark.parametrize('name', list(OPTIONS))
def test_round_trip(stylegan3, checkpoints, expected, tmp_path, name):
    data, _ = converted(stylegan3, checkpoints, tmp_path, name, '--output-range=symmetric')
    ref = expected[name]
    G, G_ema, D = data['G'], data['G_ema'], data['D']
    assert type(G).__name__ == ('FPAUNetGenerator' if name.endswith('unet') else 'FPAGenerator')
    assert data['augment_pipe'] is None and data['training_set_kwargs'] is None
    z, c = ref['z'], torch.zeros(len(ref['z']), 0)                      # z float64, as gen_images.py passes it
    with torch.no_grad():
        assert_close(G(z, c), ref['G'], F32, f'{name}: G')
        assert_close(G_ema(z, c), ref['GE'], F32, f'{name}: G_ema = the reference GE')
        assert_close(copy.deepcopy(G).double()(z, c), ref['G64'], F64, f'{name}: G in float64')
        logits, logits32, feats = D.heads(ref['x'], c)
        assert_close(logits, -ref['D'], F32, f'{name}: D = minus the reference D')
        assert_close(logits32, -ref['D32'], F32, f'{name}: D 32x32 head = minus the reference head')
        assert_close(D.reconstruction_loss(ref['x'], feats), ref['D_rec'], F32, f'{name}: D reconstruction')
        assert (G(z, c) - G_ema(z, c)).abs().max() > 0.01                # GE differs from G in the fixtures


@pytest.mark.parametrize('name', ['lstm_delta_split_v2', 'lstm_delta_split_v2_unet'])
def test_reference_output_range(stylegan3, checkpoints, expected, tmp_path, name):
    """The default maps the reference's saved images, clamp(x, 0, 1), to StyleGAN3's [-1, 1]."""
    data, output = converted(stylegan3, checkpoints, tmp_path, name)
    assert 'output range reference' in output
    ref = expected[name]
    with torch.no_grad():
        img = data['G_ema'](ref['z'], None)
    assert_close(img, 2 * ref['GE'].clamp(0, 1) - 1, F32, name)
    assert (ref['GE'] < 0).any() and (img == -1).any()


def test_weights_raw(stylegan3, checkpoints, expected, tmp_path):
    data, output = converted(stylegan3, checkpoints, tmp_path, 'lstm_delta_split_v2', '--weights=raw',
                             '--output-range=symmetric')
    assert 'G_ema <- G (raw)' in output
    with torch.no_grad():
        assert_close(data['G_ema'](expected['lstm_delta_split_v2']['z'], None), expected['lstm_delta_split_v2']['G'],
                     F32, 'G_ema from G')


def test_what_the_weights_do_not_fix(stylegan3, checkpoints, expected, tmp_path):
    ref = expected['lstm_delta']
    data, _ = converted(stylegan3, checkpoints, tmp_path, 'lstm_delta', '--no-softmax', '--output-range=symmetric')
    with torch.no_grad():
        img = copy.deepcopy(data['G']).double()(ref['z'], None)
    assert_close(img / ref['G64_nosoftmax'].abs().max(), ref['G64_nosoftmax'] / ref['G64_nosoftmax'].abs().max(), F64,
                 'v1 without softmax (relative)')
    # v1's T is not in the weights: without --steps it is the paper's 64, and says so.
    result = run_convert(f'--source={checkpoints / "lstm_delta" / "model_0.pt"}', f'--dest={tmp_path / "a.pkl"}')
    assert result.exit_code == 0 and "T = 64 steps (paper's default)" in result.output, result.output
    # v2's T is: a different --steps is an error.
    result = run_convert(f'--source={checkpoints / "lstm_delta_split_v2" / "model_0.pt"}', '--steps=64',
                         f'--dest={tmp_path / "b.pkl"}')
    assert result.exit_code != 0 and 'T = 8 steps' in result.output
    result = run_convert(f'--source={checkpoints / "lstm_delta" / "model_0.pt"}', '--input-tanh',
                         f'--dest={tmp_path / "c.pkl"}')
    assert result.exit_code != 0 and 'v2 models only' in result.output


SCRIPT = r"""#!/bin/bash
# the v2 fixture's training command, as the authors' scripts write it
python code/main.py \
  --image_size 16 \
  --num_decoding_steps=8 \
  --latent_dim 8 --v2_input_sigmoid \
  --use_latent_to_init \
  --mini_latent_dim 4 \
  --mini_input_size 8 \
  --rnn_hidden_size 16 \
  --num_layers {layers} \
  --use_softmax \
  --out_tanh   # tanh on the image
  --num_train_steps 450_000 \
  --model_type 'lstm_delta_split_v2'
"""


def test_flags_from_the_training_script(stylegan3, checkpoints, expected, tmp_path):
    flags = convert.reference_flags(SCRIPT.format(layers=2))
    assert flags['num_layers'] == '2' and flags['v2_input_sigmoid'] is True and flags['num_decoding_steps'] == '8'
    assert flags['model_type'] == 'lstm_delta_split_v2' and flags['out_tanh'] is True
    script = tmp_path / 'train.sh'
    script.write_text(SCRIPT.format(layers=2))
    source = checkpoints / 'lstm_delta_split_v2' / 'model_0.pt'
    result = run_convert(f'--source={source}', f'--dest={tmp_path / "v2.pkl"}', f'--flags-from={script}',
                         '--output-range=symmetric')
    assert result.exit_code == 0, result.output
    assert 'input tanh yes (--flags-from)' in result.output
    sys.path.insert(0, str(stylegan3))
    import legacy
    with open(tmp_path / 'v2.pkl', 'rb') as f:
        G = legacy.load_network_pkl(f)['G_ema']
    with torch.no_grad():
        assert_close(G(expected['lstm_delta_split_v2']['z'], None), expected['lstm_delta_split_v2']['GE'], F32, 'v2')
    script.write_text(SCRIPT.format(layers=1))                          # a script for another model
    result = run_convert(f'--source={source}', f'--dest={tmp_path / "x.pkl"}', f'--flags-from={script}')
    assert result.exit_code != 0 and '--num_layers 1 (the checkpoint: 2)' in result.output


def test_key_names_map_both_ways(checkpoints):
    """Every reference key maps to one of ours and back: errors name keys as the checkpoint does."""
    for name in OPTIONS:
        state, version = convert.load_checkpoint(checkpoints / name / 'model_0.pt')
        assert version == '0.23.3'
        for key in state:
            net, _, rest = key.partition('.')
            if net in ('G', 'GE') and not rest.startswith('mod_dict.'):
                assert convert.reference_generator_key(convert.generator_key(rest)) == rest
            elif net == 'D':
                assert convert.reference_discriminator_key(convert.discriminator_key(rest)) == rest

#----------------------------------------------------------------------------
# Bad input: a clear error (click's, no traceback) that names the keys.

def edited(checkpoints, tmp_path, name, edit):
    """A copy of a fixture's checkpoint after edit(state dict of the GAN)."""
    ckpt = torch.load(checkpoints / name / 'model_0.pt')
    edit(ckpt['GAN'])
    path = tmp_path / f'edited-{name}.pt'
    torch.save(ckpt, path)
    return path


def fails(args, *messages):
    result = run_convert(*args)
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit), (result.output, result.exception)
    for m in messages:
        assert m in result.output, f'{m!r} not in:\n{result.output}'
    return result.output


def test_bad_files(stylegan3, tmp_path):
    fails([f'--source={tmp_path / "nothing.pt"}', f'--dest={tmp_path / "x.pkl"}'], 'No checkpoint at')
    (tmp_path / 'text.pt').write_text('not a checkpoint')
    fails([f'--source={tmp_path / "text.pt"}', f'--dest={tmp_path / "x.pkl"}'], 'is not a PyTorch checkpoint')
    torch.save({'model': {'weight': torch.zeros(2)}, 'step': 3}, tmp_path / 'other.pt')
    fails([f'--source={tmp_path / "other.pt"}', f'--dest={tmp_path / "x.pkl"}'],
          "is not a checkpoint of the authors' code", 'model, step')
    assert not (tmp_path / 'x.pkl').exists()


def _set(state, **tensors):
    state.update({k.replace('__', '.'): v for k, v in tensors.items()})


@pytest.mark.parametrize('edit,messages', [
    # Another generator (here: v2 with the unused wide_out_dim MLP): unexpected and missing keys, by name.
    (lambda s: (s.pop('G.kvb_net.weight'), _set(s, G__wide_net__0__weight=torch.zeros(4, 16))),
     ['G is not an FPA generator of a known type', 'unexpected keys (1): G.wide_net.0.weight',
      'missing keys (1): G.kvb_net.weight']),
    # An antialiased D (the LightGAN baseline's): its blur filters are not in the FPA D.
    (lambda s: _set(s, D__to_logits__0__f=torch.ones(3)),
     ['D does not match', 'unexpected keys (1): D.to_logits.0.f']),
    # A tensor of D (and of D_aug.D, the same module) lost: named as the checkpoint names it.
    (lambda s: [s.pop(f'{p}decoder1.layers.2.1.bias') for p in ('D.', 'D_aug.D.')],
     ['missing keys (1): D.decoder1.layers.2.1.bias']),
    # A wrong shape: the key and both shapes.
    (lambda s: _set(s, G__decoder_rnn__weight_hh_l1=torch.zeros(64, 17)),
     ['G.decoder_rnn.weight_hh_l1: (64, 17) in the checkpoint, (64, 16) expected']),
    # G paints 16x16 (kvb_net) but D takes 32x32.
    (lambda s: _set(s, G__kvb_net__weight=torch.zeros(3 * 65, 16), G__kvb_net__bias=torch.zeros(3 * 65)),
     ['G.kvb_net.weight: (195, 16) in the checkpoint, (99, 16) expected']),
    (lambda s: [s.pop(k) for k in list(s) if k.startswith('GE.')], ['no GE.*', '--weights raw']),
    (lambda s: _set(s, step=torch.zeros(1)), ['keys outside G.*, GE.*, D.*', 'step']),
])
def test_bad_checkpoints(stylegan3, checkpoints, tmp_path, edit, messages):
    path = edited(checkpoints, tmp_path, 'lstm_delta_split_v2', edit)
    fails([f'--source={path}', f'--dest={tmp_path / "x.pkl"}', '--input-tanh'], *messages)


def test_bad_unet_alias(stylegan3, checkpoints, tmp_path):
    path = edited(checkpoints, tmp_path, 'lstm_delta_split_v2_unet',
                  lambda s: s.update({'G.mod_dict.unet.0.final_conv.bias': s['G.u_net.final_conv.bias'] + 1}))
    fails([f'--source={path}', f'--dest={tmp_path / "x.pkl"}'], 'G.mod_dict.unet.0.final_conv.bias')

#----------------------------------------------------------------------------
# The command line end to end: fpa-convert, then StyleGAN3's gen_images.py and fpa-paint on the pickle.

@pytest.mark.parametrize('name', ['lstm_delta_split_v2', 'lstm_delta_split_v2_unet'])
def test_cli_gen_images_and_paint(stylegan3, checkpoints, expected, tmp_path, name):
    pkl = tmp_path / 'converted.pkl'
    cmd = [sys.executable, '-m', 'fpa_plugin.tools.convert', f'--source={checkpoints / name / "model_0.pt"}',
           f'--dest={pkl}', *OPTIONS[name]]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f'Wrote {pkl}' in proc.stdout
    run_host(stylegan3, 'gen_images.py', f'--network={pkl}', '--seeds=0-1', f'--outdir={tmp_path / "images"}')
    # The pixels the authors' code saves: save_image(clamp(x, 0, 1)) = round(255 clamp(x, 0, 1)).
    saved = (expected[name]['GE'].clamp(0, 1) * 255 + 0.5).floor().permute(0, 2, 3, 1).numpy()
    for i in range(2):
        ours = np.asarray(PIL.Image.open(tmp_path / 'images' / f'seed{i:04d}.png'), np.float64)
        assert np.abs(ours - saved[i]).max() <= 1, f'seed {i}'
    paint = subprocess.run([sys.executable, '-m', 'fpa_plugin.tools.paint', f'--network={pkl}', '--seeds=0',
                            f'--outdir={tmp_path / "paint"}', '--no-gif', '--no-mp4'],
                           capture_output=True, text=True, timeout=300)
    assert paint.returncode == 0, paint.stdout + paint.stderr
    assert (tmp_path / 'paint' / 'steps.png').is_file()


def test_cli_error_has_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, '-m', 'fpa_plugin.tools.convert', f'--source={tmp_path / "none.pt"}',
                           f'--dest={tmp_path / "x.pkl"}'], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and 'Error: No checkpoint at' in proc.stderr and 'Traceback' not in proc.stderr
