"""The rest of the paper's Table 1 in StyleGAN3's loop: FPA + U-Net (--cfg=fpa-unet) on an FPA run's snapshot, and
the LightGAN baseline (--cfg=lightgan): a tick on tiny data, snapshot, gen_images.py, a metric, --resume; the
frozen FPA stays bit-identical; clear errors for a missing, foreign or mismatched --fpa-pkl."""

import json
import subprocess
import sys
import textwrap

import pytest

from conftest import run_dirs, run_host, train

SHORT = ['--batch=16', '--kimg=1', '--tick=1', '--snap=1', '--workers=1']


def load_snapshot(stylegan3, path):
    sys.path.insert(0, str(stylegan3))
    import legacy
    with open(path, 'rb') as f:
        return legacy.load_network_pkl(f)


@pytest.fixture(scope='module')
def unet_run(stylegan3, fpa_run, make_dataset, standin_detector, tmp_path_factory):
    outdir = tmp_path_factory.mktemp('unet-runs')
    train(stylegan3, outdir, make_dataset(16), '--cfg=fpa-unet', f'--fpa-pkl={fpa_run / "network-snapshot-000001.pkl"}',
          '--unet-size=tiny', *SHORT, '--metrics=fid5k_full', env={'DNNLIB_CACHE_DIR': str(standin_detector)})
    (run,) = run_dirs(outdir)
    return run


@pytest.fixture(scope='module')
def lightgan_run(stylegan3, make_dataset, standin_detector, tmp_path_factory):
    outdir = tmp_path_factory.mktemp('lightgan-runs')
    train(stylegan3, outdir, make_dataset(16), '--cfg=lightgan', '--gen-size=tiny', '--disc-size=tiny', *SHORT,
          '--metrics=fid5k_full', env={'DNNLIB_CACHE_DIR': str(standin_detector)})
    (run,) = run_dirs(outdir)
    return run

#----------------------------------------------------------------------------

def test_unet_stage_keeps_the_fpa_frozen(stylegan3, fpa_run, unet_run):
    import torch
    source = load_snapshot(stylegan3, fpa_run / 'network-snapshot-000001.pkl')
    trained = load_snapshot(stylegan3, unet_run / 'network-snapshot-000001.pkl')
    frozen = dict(source['G_ema'].fpa.named_parameters())              # default --fpa-weights=ema
    for key in ['G', 'G_ema']:
        for name, p in trained[key].fpa.named_parameters():
            assert torch.equal(p, frozen[name]), f'{key}.fpa.{name} changed'
    start = load_snapshot(stylegan3, unet_run / 'network-snapshot-000000.pkl')['G']
    changed = [n for n, p in trained['G'].unet.named_parameters()
               if not torch.equal(p, dict(start.unet.named_parameters())[n])]
    assert changed, 'the U-Net did not train'
    # D starts from the FPA run's D (the reference's recipe): built from the run's options, it equals that D.
    import dnnlib
    D_kwargs = json.loads((unet_run / 'training_options.json').read_text())['D_kwargs']
    assert D_kwargs['init_pkl'] == str(fpa_run / 'network-snapshot-000001.pkl')
    D = dnnlib.util.construct_class_by_name(**D_kwargs, c_dim=0, img_resolution=16, img_channels=3)
    built = dict(D.named_parameters())
    assert all(torch.equal(p, built[n]) for n, p in source['D'].named_parameters())


def test_unet_generator_shows_before_and_after(stylegan3, unet_run):
    import torch
    G = load_snapshot(stylegan3, unet_run / 'network-snapshot-000001.pkl')['G_ema']
    z, c = torch.randn(2, G.z_dim), torch.zeros(2, 0)
    trace = G.paint(z, c)
    torch.testing.assert_close(trace.refined, G(z, c))                  # after the U-Net: G's output
    torch.testing.assert_close(trace.image, G.fpa(z))                   # before: the FPA's own image
    assert not torch.allclose(trace.image, trace.refined)


@pytest.mark.parametrize('which', ['unet', 'lightgan'])
def test_generate_metric_resume(stylegan3, which, unet_run, lightgan_run, make_dataset, standin_detector, tmp_path):
    run = unet_run if which == 'unet' else lightgan_run
    snapshot = run / 'network-snapshot-000001.pkl'
    assert len((run / 'metric-fid5k_full.jsonl').read_text().splitlines()) == 2
    run_host(stylegan3, 'gen_images.py', f'--network={snapshot}', '--seeds=0-1', f'--outdir={tmp_path / "img"}')
    assert len(list((tmp_path / 'img').glob('seed*.png'))) == 2
    proc = run_host(stylegan3, 'calc_metrics.py', f'--network={snapshot}', '--metrics=fid5k_full_jpeg',
                    f'--data={make_dataset(16)}', '--gpus=1', env={'DNNLIB_CACHE_DIR': str(standin_detector)})
    assert '"fid5k_full_jpeg"' in proc.stdout
    if which == 'unet':
        opts = json.loads((run / 'training_options.json').read_text())
        args = ['--cfg=fpa-unet', f'--fpa-pkl={opts["G_kwargs"]["fpa_pkl"]}', '--unet-size=tiny']
    else:
        args = ['--cfg=lightgan', '--gen-size=tiny', '--disc-size=tiny']
    train(stylegan3, tmp_path / 'resumed', make_dataset(16), *args, *SHORT, '--metrics=none', f'--resume={snapshot}')
    (resumed,) = run_dirs(tmp_path / 'resumed')
    assert (resumed / 'network-snapshot-000001.pkl').is_file()


def test_lightgan_baseline(stylegan3, lightgan_run):
    opts = json.loads((lightgan_run / 'training_options.json').read_text())
    assert opts['G_kwargs']['class_name'] == 'fpa_plugin.stylegan3.networks.LightGANGenerator'
    assert opts['D_kwargs']['blur'] is True                             # the baseline's D blurs (reference)
    assert opts['loss_kwargs']['class_name'] == 'fpa_plugin.stylegan3.loss.LightGANLoss'

#----------------------------------------------------------------------------

def test_fpa_unet_bad_input(stylegan3, fpa_run, make_dataset, tmp_path):
    sg2 = tmp_path / 'stylegan2.pkl'
    code = textwrap.dedent(f'''
        import sys, pickle, torch
        sys.path.insert(0, {str(stylegan3)!r})
        from training.networks_stylegan2 import Generator, Discriminator
        G = Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3,
                      mapping_kwargs=dict(num_layers=1), channel_base=256, channel_max=8)
        D = Discriminator(c_dim=0, img_resolution=16, img_channels=3, channel_base=256, channel_max=8)
        pickle.dump(dict(G=G, G_ema=G, D=D, augment_pipe=None, training_set_kwargs=None), open({str(sg2)!r}, 'wb'))
    ''')
    subprocess.run([sys.executable, '-c', code], check=True)
    fpa_pkl = fpa_run / 'network-snapshot-000001.pkl'
    cases = [
        ([f'--data={make_dataset(16)}'], 'needs --fpa-pkl=PATH'),
        ([f'--data={make_dataset(16)}', f'--fpa-pkl={tmp_path / "missing.pkl"}'], 'cannot read'),
        ([f'--data={make_dataset(16)}', f'--fpa-pkl={sg2}'], 'is not an FPA network pickle'),
        ([f'--data={make_dataset(32)}', f'--fpa-pkl={fpa_pkl}'], 'the FPA paints 16x16 images'),
        ([f'--data={make_dataset(16)}', f'--fpa-pkl={fpa_pkl}', '--fpa-steps=4'], '--fpa-steps only applies'),
    ]
    for args, message in cases:
        proc = run_host(stylegan3, 'train.py', f'--outdir={tmp_path / "out"}', '--gpus=1', '--batch=16',
                        '--cfg=fpa-unet', *args, check=False)
        assert proc.returncode != 0 and message in proc.stderr, (args, proc.stderr[-2000:])
        assert 'Traceback' not in proc.stderr
        assert not (tmp_path / 'out').exists() or run_dirs(tmp_path / 'out') == []
