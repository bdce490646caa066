"""End to end in StyleGAN3 on CPU: train.py --cfg=fpa for a tick on tiny data -> snapshot -> legacy loading ->
gen_images.py -> calc_metrics.py (stand-in detector) -> --resume; --disc=stylegan2, --cond=1, --gpus=2, the
host's own --cfg=stylegan2 after patching; and bad input, which must fail clearly and leave no run directory."""

import json
import subprocess
import sys
import textwrap

import pytest

from conftest import TINY, run_dirs, run_host, train


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

#----------------------------------------------------------------------------

def test_fpa_trains_in_stylegan3s_loop(fpa_run):
    opts = json.loads((fpa_run / 'training_options.json').read_text())
    assert opts['G_kwargs']['class_name'] == 'fpa_plugin.stylegan3.networks.FPAGenerator'
    assert opts['D_kwargs']['class_name'] == 'fpa_plugin.stylegan3.networks.LightGANDiscriminator'
    assert opts['loss_kwargs']['class_name'] == 'fpa_plugin.stylegan3.loss.LightGANLoss'
    assert opts['G_opt_kwargs']['lr'] == 2e-4 and opts['G_opt_kwargs']['betas'] == [0.5, 0.9]
    assert 'augment_kwargs' not in opts                                 # no augmentation by default
    assert {'network-snapshot-000000.pkl', 'network-snapshot-000001.pkl', 'fakes000001.png'} <= \
        {p.name for p in fpa_run.iterdir()}
    stats = read_jsonl(fpa_run / 'stats.jsonl')
    last = stats[-1]
    for key in ['Loss/G/loss', 'Loss/D/hinge', 'Loss/D/hinge32', 'Loss/D/recon', 'Loss/D/gp', 'Loss/D/loss',
                'Resources/peak_cpu_mem_gb']:
        assert key in last and last[key]['num'] > 0, key
    assert last['Progress/kimg']['mean'] >= 1.0
    fids = read_jsonl(fpa_run / 'metric-fid5k_full.jsonl')
    assert len(fids) == 2 and all(f['results']['fid5k_full'] > 0 for f in fids)


def test_snapshot_loads_with_legacy(stylegan3, fpa_run):
    code = textwrap.dedent(f'''
        import sys, torch
        sys.path.insert(0, {str(stylegan3)!r})
        import dnnlib, legacy
        with dnnlib.util.open_url({str(fpa_run / 'network-snapshot-000001.pkl')!r}) as f:
            data = legacy.load_network_pkl(f)
        G = data['G_ema']
        assert type(G).__name__ == 'FPAGenerator' and G.img_resolution == 16 and G.img_channels == 3
        z = torch.randn(3, G.z_dim, dtype=torch.float64)                # gen_images.py passes float64
        c = torch.zeros(3, 0)
        img = G(z, c, truncation_psi=1, noise_mode='const')
        assert img.shape == (3, 3, 16, 16) and img.abs().max() <= 1
        ws = G.mapping(z, c)
        torch.testing.assert_close(G.synthesis(ws, noise_mode='const'), img)
        assert data['D'](img, c).shape == (3, 1)
        print('ok')
    ''')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert proc.stdout.strip() == 'ok', proc.stderr


def test_gen_images(stylegan3, fpa_run, tmp_path):
    run_host(stylegan3, 'gen_images.py', f'--network={fpa_run / "network-snapshot-000001.pkl"}', '--seeds=0-2',
             f'--outdir={tmp_path}', '--trunc=0.7')
    import PIL.Image
    images = sorted(tmp_path.glob('seed*.png'))
    assert len(images) == 3 and all(PIL.Image.open(p).size == (16, 16) for p in images)


def test_calc_metrics_jpeg_differs(stylegan3, fpa_run, make_dataset, standin_detector):
    proc = run_host(stylegan3, 'calc_metrics.py', f'--network={fpa_run / "network-snapshot-000001.pkl"}',
                    '--metrics=fid5k_full,fid5k_full_jpeg', f'--data={make_dataset(16)}', '--gpus=1',
                    env={'DNNLIB_CACHE_DIR': str(standin_detector)})
    results = {}
    for line in proc.stdout.splitlines():
        if line.startswith('{"results"'):
            results.update(json.loads(line)['results'])
    assert set(results) == {'fid5k_full', 'fid5k_full_jpeg'}
    assert results['fid5k_full'] != results['fid5k_full_jpeg']


def test_resume(stylegan3, fpa_run, make_dataset, tmp_path):
    train(stylegan3, tmp_path, make_dataset(16), '--cfg=fpa', *TINY, '--metrics=none',
          f'--resume={fpa_run / "network-snapshot-000001.pkl"}')
    (run,) = run_dirs(tmp_path)
    assert (run / 'network-snapshot-000001.pkl').is_file()
    assert 'Resuming from' in (run / 'log.txt').read_text()

#----------------------------------------------------------------------------

def test_stylegan2_discriminator(stylegan3, make_dataset, tmp_path):
    train(stylegan3, tmp_path, make_dataset(16), '--cfg=fpa', '--disc=stylegan2', '--cbase=1024', '--cmax=64',
          '--fpa-preset=tiny', '--batch=16', '--kimg=1', '--tick=1', '--snap=1', '--workers=1', '--metrics=none')
    (run,) = run_dirs(tmp_path)
    opts = json.loads((run / 'training_options.json').read_text())
    assert opts['loss_kwargs']['class_name'] == 'training.loss.StyleGAN2Loss'
    assert 'Loss/D/reg' in read_jsonl(run / 'stats.jsonl')[-1]          # R1 ran through G.mapping/G.synthesis


def test_conditional(stylegan3, make_dataset, tmp_path):
    train(stylegan3, tmp_path, make_dataset(16, labels=3), '--cfg=fpa', '--cond=1', *TINY, '--metrics=none')
    (run,) = run_dirs(tmp_path)
    code = textwrap.dedent(f'''
        import sys, torch
        sys.path.insert(0, {str(stylegan3)!r})
        import dnnlib, legacy
        with dnnlib.util.open_url({str(run / 'network-snapshot-000001.pkl')!r}) as f:
            G = legacy.load_network_pkl(f)['G_ema']
        assert G.c_dim == 3
        z = torch.randn(1, G.z_dim).repeat(2, 1)
        img = G(z, torch.eye(3)[:2])
        assert not torch.allclose(img[0], img[1])
        print('ok')
    ''')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert proc.stdout.strip() == 'ok', proc.stderr


def test_two_processes_on_cpu(stylegan3, make_dataset, tmp_path):
    train(stylegan3, tmp_path, make_dataset(16), '--cfg=fpa', *TINY, '--metrics=none', '--gpus=2')
    (run,) = run_dirs(tmp_path)
    assert json.loads((run / 'training_options.json').read_text())['num_gpus'] == 2
    assert (run / 'network-snapshot-000001.pkl').is_file()


def test_host_stylegan2_still_trains(stylegan3, make_dataset, tmp_path):
    train(stylegan3, tmp_path, make_dataset(16), '--cfg=stylegan2', '--gamma=1', '--cbase=1024', '--cmax=32',
          '--map-depth=2', '--batch=16', '--kimg=1', '--tick=1', '--snap=1', '--workers=1', '--metrics=none')
    (run,) = run_dirs(tmp_path)
    assert json.loads((run / 'training_options.json').read_text())['G_kwargs']['class_name'] == \
        'training.networks_stylegan2.Generator'
    assert (run / 'network-snapshot-000001.pkl').is_file()

#----------------------------------------------------------------------------

@pytest.mark.parametrize('args,message', [
    (['--data=/nonexistent/data.zip', '--cfg=fpa'], '--data'),
    (['--cfg=fpa', '--fpa-preset=celebahq'], "Invalid value for '--fpa-preset'"),
    (['--cfg=stylegan2'], "Missing option '--gamma'"),
    (['--cfg=stylegan2', '--gamma=1', '--fpa-steps=8'], '--fpa-steps only applies to --cfg=fpa'),
    (['--cfg=fpa', '--gamma=1'], '--gamma applies to --disc=stylegan2 only'),
    (['--cfg=fpa', '--adam-betas=0.5'], '--adam-betas must be two numbers'),
])
def test_bad_input_fails_clearly(stylegan3, make_dataset, tmp_path, args, message):
    data = [] if any(a.startswith('--data') for a in args) else [f'--data={make_dataset(16)}']
    proc = run_host(stylegan3, 'train.py', f'--outdir={tmp_path}', '--gpus=1', '--batch=16', *data, *args,
                    check=False)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr
    assert 'Traceback' not in proc.stderr
    assert run_dirs(tmp_path) == []


def test_resolution_the_networks_cannot_take(stylegan3, make_dataset, tmp_path):
    proc = run_host(stylegan3, 'train.py', f'--outdir={tmp_path}', '--gpus=1', '--batch=16', '--cfg=fpa',
                    f'--data={make_dataset(8)}', check=False)
    assert proc.returncode == 1 and 'Cannot build the discriminator for 8x8 data' in proc.stderr
    assert 'Traceback' not in proc.stderr and run_dirs(tmp_path) == []


def test_mbstd_group_reaches_the_lightgan_d_only_when_given(stylegan3, make_dataset, tmp_path):
    data = make_dataset(16)
    options = lambda *args: run_host(stylegan3, 'train.py', f'--outdir={tmp_path}', '--gpus=1', '--batch=16',
                                     f'--data={data}', '--cfg=fpa', '--dry-run', *args).stdout
    assert '"mbstd_group": 2' in options('--mbstd-group=2')
    assert '"mbstd_group"' not in options()                             # the paper's D has none
    assert run_dirs(tmp_path) == []
