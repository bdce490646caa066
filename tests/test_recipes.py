"""The paper's recipes (training_configs/recipes, `fpa-recipe`): every number against the paper's tables, every
command against the real scripts' options, the preparation command run on raw images, and a dry run of every
training command in StyleGAN3's train.py (the config builds, the networks instantiate at 64x64, their parameter
counts are the paper's).

The dry runs call train.py's click command in this process (one StyleGAN3 import instead of 24), as
`python train.py ... --dry-run` would; a dry run prints the training options as JSON and builds nothing, so the test
builds G and D from the printed kwargs, on the meta device (no memory) for the plugin's networks.
"""

import contextlib
import io
import json
import os
import pickle
import sys
import zipfile

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

from fpa_plugin.core import presets
from fpa_plugin.tools import recipes

#----------------------------------------------------------------------------
# The paper's numbers, transcribed: Table 1 (FID, JPEG), Table 4 (FID, PNG), Table 5 (FPA/U-Net on the v2 FPA),
# Table 3 (generator / total parameter counts, M), App. C.2 (training lengths, steps of batch 20).

DATASETS = ['celeba', 'metfaces', 'afhq-cat', 'afhq-dog', 'afhq-wild', 'lsun-church']
MODELS = ['stylegan2', 'lightgan', 'fpa', 'fpa-unet']
TABLE1 = {'stylegan2': [1.7, 17.2, 7.5, 11.7, 5.2, 2.8], 'lightgan': [3.4, 26.4, 7.9, 16.8, 10.2, 5.1],
          'fpa': [18.3, 36.3, 17.1, 45.3, 20.2, 42.8], 'fpa-unet': [3.7, 24.5, 6.8, 19.9, 9.4, 5.2]}
TABLE4 = {'stylegan2': [2.7, 24.8, 11.7, 17.4, 7.0, 9.8], 'lightgan': [8.8, 47.2, 13.0, 27.9, 14.0, 9.6],
          'fpa': [33.6, 73.7, 23.4, 71.6, 28.6, 64.7], 'fpa-unet': [6.9, 43.1, 9.8, 30.5, 12.6, 8.5]}
TABLE5_V2 = {'afhq-cat': 7.8, 'afhq-dog': 22.9}
TABLE3 = {'celeba': (14, 26), 'metfaces': (220, 232), 'afhq-cat': (6, 18), 'afhq-dog': (14, 26),
          'afhq-wild': (6, 19), 'lsun-church': (17, 29)}
PAPER_STEPS = {('celeba', 'fpa'): 150_000, ('celeba', 'lightgan'): 285_000, ('lsun-church', 'fpa'): 70_000,
               ('lsun-church', 'lightgan'): 70_000, ('lsun-church', 'fpa-unet'): 380_000,
               ('afhq-cat', 'fpa'): 280_000, ('afhq-cat', 'lightgan'): 30_000}
UNET_PARAMS = 7_985_475                 # the reference U-Net at 64x64 (paper App. C.1: "8 M")
LIGHTGAN_PARAMS = (20_988_039, 12_326_632)  # the reference's baseline G and D at 64x64 (not in the paper)

VALUES = dict(raw='/raw in', data='/data/x.zip', outdir='/runs', fpa_pkl='/runs/fpa.pkl', network='/runs/n.pkl')


def opts(command):
    """{'--name': 'value'} of a filled `python <script> --name=value ...` command."""
    args = recipes.script_args(command)
    assert all(a.startswith('--') and '=' in a for a in args), command
    pairs = [a.split('=', 1) for a in args]
    assert len({k for k, _ in pairs}) == len(pairs), f'an option given twice: {command}'
    return dict(pairs)


def train_opts(name, model):
    return opts(recipes.fill(recipes.load_recipe(name)['runs'][model]['train'], VALUES))


def at_precision(count, value):
    """`count` in millions, rounded as `value` is written (14 -> whole millions, 12.3 -> one decimal)."""
    decimals = len(repr(value).split('.')[1]) if isinstance(value, float) else 0
    return round(count / 1e6, decimals)

#----------------------------------------------------------------------------
# The recipes themselves.

def test_one_recipe_per_dataset_in_table_order():
    assert recipes.list_recipes() == DATASETS


@pytest.mark.parametrize('name', DATASETS)
def test_recipe_layout(name):
    r = recipes.load_recipe(name)
    assert r['dataset'] == name and r['resolution'] == 64 and r['images'] > 1000
    assert list(r['runs']) == MODELS
    assert recipes.placeholders(r['prepare']) == ['raw', 'data']
    assert recipes.placeholders(r['evaluate']) == ['network', 'data']
    for model, run in r['runs'].items():
        needs = ['outdir', 'fpa_pkl', 'data'] if model == 'fpa-unet' else ['outdir', 'data']
        assert recipes.placeholders(run['train']) == needs, model
        assert run['train'].startswith('python train.py ') and run['notes'] and run['length']


@pytest.mark.parametrize('name', DATASETS)
def test_fids_are_the_papers(name):
    i = DATASETS.index(name)
    for model, run in recipes.load_recipe(name)['runs'].items():
        paper = run['paper_fid']
        assert (paper['table1_jpeg'], paper['table4_png']) == (TABLE1[model][i], TABLE4[model][i]), model
        if model == 'fpa-unet' and name in TABLE5_V2:      # Table 1's U-Net sat on a v1 FPA; the recipe's on v2
            assert paper['table5_v2_jpeg'] == TABLE5_V2[name]
            assert run['expected_fid'] == {'jpeg': TABLE5_V2[name], 'png': None}
        else:
            assert run['expected_fid'] == {'jpeg': TABLE1[model][i], 'png': TABLE4[model][i]}, model
    assert presets.load_preset(name)['paper']['fid_table1'] == TABLE1['fpa'][i]


@pytest.mark.parametrize('name', DATASETS)
def test_batch_lengths_and_fid_schedule(name):
    runs = recipes.load_recipe(name)['runs']
    for model, run in runs.items():
        o = train_opts(name, model)
        assert o['--cfg'] == model and o['--gpus'] == '1'
        assert int(o['--batch']) == run['batch'] and int(o['--kimg']) == run['kimg'], model
        assert run['steps'] * run['batch'] == run['kimg'] * 1000
        assert int(o['--tick']) * int(o['--snap']) == 100, model          # a snapshot and an FID every 100 kimg
        assert o['--metrics'] == 'fid10k_full_jpeg' and o['--aug'] == 'noaug' and o['--mirror'] == '0'
        if (name, model) in PAPER_STEPS:
            assert run['steps'] == PAPER_STEPS[name, model] and run['length'].startswith('paper App. C.2'), model
        else:
            assert run['length'].startswith('choice'), model
        if model == 'stylegan2':                                        # StyleGAN2-ADA's heuristic for 64x64
            assert float(o['--gamma']) == pytest.approx(0.0002 * 64 ** 2 / run['batch'])
        else:                                                           # the paper's batch and learning rate
            assert run['batch'] == 20 and float(o['--lr']) == 2e-4
            assert run['kimg'] % 100 == 0 and run['steps'] % 5000 == 0  # FID every 5K steps, the last one included
    assert train_opts(name, 'fpa')['--fpa-preset'] == name
    assert train_opts(name, 'fpa-unet')['--fpa-pkl'] == VALUES['fpa_pkl']


@pytest.mark.parametrize('name', DATASETS)
def test_parameter_counts_are_table3(name):
    runs = recipes.load_recipe(name)['runs']
    assert runs['fpa']['params_m'] == {'G': TABLE3[name][0], 'G+D': TABLE3[name][1]}
    assert runs['fpa-unet']['params_m'] == {'U-Net': 8}
    paper = presets.load_preset(name)['paper']
    assert (paper['gen_params_m'], paper['total_params_m']) == TABLE3[name]


def test_evaluation_is_the_papers_protocol():
    for name in DATASETS:
        o = opts(recipes.fill(recipes.load_recipe(name)['evaluate'], VALUES))
        assert o['--metrics'] == 'fid50k_full_jpeg,fid50k_full_png' and o['--data'] == VALUES['data']

#----------------------------------------------------------------------------
# Filling and the CLI.

def test_fill_quotes_and_leaves_what_is_not_given():
    text = 'python train.py --outdir={outdir} --data={data} --fpa-pkl={fpa_pkl}'
    assert recipes.fill(text, dict(outdir='/a b', data='/d.zip')) == \
        "python train.py --outdir='/a b' --data=/d.zip --fpa-pkl={fpa_pkl}"
    assert recipes.script_args(recipes.fill(text, VALUES)) == ['--outdir=/runs', '--data=/data/x.zip',
                                                               '--fpa-pkl=/runs/fpa.pkl']
    with pytest.raises(ValueError, match='No placeholder called dat'):
        recipes.fill(text, dict(dat='/d.zip'))
    with pytest.raises(ValueError, match='Unknown placeholder'):
        recipes.fill('--x={nope}', {})


def test_every_placeholder_fills():
    for name in DATASETS:
        filled = recipes.commands(recipes.load_recipe(name), VALUES)
        assert [step for step, _ in filled] == ['prepare'] + MODELS + ['evaluate']
        assert all(recipes.placeholders(command) == [] for _, command in filled), name
        assert "--source='/raw in' " in filled[0][1]


def test_cli_lists_the_recipes():
    result = CliRunner().invoke(recipes.main, [])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split()[0] for line in lines[1:]] == DATASETS
    assert lines[1].split()[2:6] == ['1.7', '3.4', '18.3', '3.7']      # CelebA's row of Table 1


def test_cli_prints_the_commands_filled(tmp_path, monkeypatch):
    args = ['afhq-cat', '--raw=raw/cat', f'--data={tmp_path}/cat.zip', '--outdir=runs', '--fpa-pkl=/p/best.pkl']
    monkeypatch.chdir(tmp_path)
    cwd = os.getcwd()
    result = CliRunner().invoke(recipes.main, args)
    assert result.exit_code == 0, result.output
    commands = [line for line in result.output.splitlines() if line.startswith('python ')]
    assert len(commands) == 6                                           # prepare, four runs, evaluate
    assert commands[0] == (f'python dataset_tool.py --source={cwd}/raw/cat --dest={tmp_path}/cat.zip '
                           f'--transform=center-crop --resolution=64x64')  # relative paths made absolute
    assert all(f'--outdir={cwd}/runs ' in c for c in commands[1:5])
    assert '--fpa-pkl=/p/best.pkl' in commands[4] and '{network}' in commands[5]
    assert 'Still to fill: {network}' in result.output
    assert 'Expected FID (50k, best snapshot): 7.8 JPEG' in result.output      # Table 5: the recipe's U-Net


def test_cli_json_and_model_filter():
    result = CliRunner().invoke(recipes.main, ['celeba', '--data=/d.zip', '--model=fpa', '--json'])
    assert result.exit_code == 0, result.output
    r = json.loads(result.output)
    assert list(r['runs']) == ['fpa'] and '--data=/d.zip' in r['runs']['fpa']['train']
    assert '--dest=/d.zip' in r['prepare'] and '{raw}' in r['prepare']


def test_cli_unknown_recipe():
    result = CliRunner().invoke(recipes.main, ['imagenet'])
    assert result.exit_code != 0 and 'Unknown recipe' in result.output

#----------------------------------------------------------------------------
# In StyleGAN3: the real scripts' parsers, the preparation, and a dry run of every training command.

def call(command, *extra):
    """Run a click command of the checkout in this process; return what it printed."""
    out = io.StringIO()
    saved = sys.stdout, sys.stderr
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            command.main(list(extra), standalone_mode=False)
    finally:
        sys.stdout, sys.stderr = saved                                  # train.py's dnnlib.util.Logger took them
    return out.getvalue()


@pytest.fixture(scope='module')
def host(stylegan3):
    from fpa_plugin.stylegan3 import checkout
    checkout.import_host(stylegan3)
    import calc_metrics
    import dataset_tool
    import train
    return dict(train=train.main, prepare=dataset_tool.convert_dataset, evaluate=calc_metrics.calc_metrics)


@pytest.fixture(scope='module')
def raw_images(tmp_path_factory):
    """Six non-square photos, as CelebA's 178x218 and LSUN's 256xN are: the centre crop matters."""
    folder = tmp_path_factory.mktemp('raw')
    rng = np.random.default_rng(0)
    for i in range(6):
        PIL.Image.fromarray(rng.integers(0, 255, (109, 89, 3), dtype=np.uint8)).save(folder / f'{i}.jpg')
    return folder


@pytest.fixture(scope='module')
def prepared(host, raw_images, tmp_path_factory):
    """prepared(name) -> the 64x64 dataset zip made by the recipe's own preparation command."""
    made = {}

    def make(name):
        if name not in made:
            dest = tmp_path_factory.mktemp('data') / f'{name}-64x64.zip'
            command = recipes.fill(recipes.load_recipe(name)['prepare'], dict(raw=raw_images, data=dest))
            call(host['prepare'], *recipes.script_args(command))
            made[name] = dest
        return made[name]
    return make


@pytest.fixture(scope='module')
def fpa_snapshot(host, tmp_path_factory):
    """fpa_snapshot(name) -> a network pickle as an FPA run of the recipe writes it (untrained). MetFaces' FPA has
    220M parameters (a 0.9 GB pickle): its snapshot holds meta tensors, which pickle without data."""
    from fpa_plugin.core.lightgan import DISC_SIZES
    from fpa_plugin.stylegan3.networks import FPAGenerator, LightGANDiscriminator
    made = {}

    def make(name):
        if name not in made:
            kwargs = presets.generator_kwargs(name, width=64)
            for key in ('width', 'height', 'channels'):
                del kwargs[key]
            common = dict(c_dim=0, img_resolution=64, img_channels=3)
            with torch.device('meta' if name == 'metfaces' else 'cpu'):
                G = FPAGenerator(**common, **kwargs)
                D = LightGANDiscriminator(**common, blur=False, **DISC_SIZES['paper'])
            made[name] = tmp_path_factory.mktemp('fpa') / f'{name}.pkl'
            with open(made[name], 'wb') as f:
                pickle.dump(dict(G=G, G_ema=G, D=D, augment_pipe=None, training_set_kwargs=None), f)
        return made[name]
    return make


def build(kwargs, resolution=64):
    """A network from the printed kwargs as training_loop builds it: the plugin's on the meta device, the host's
    (whose constructors fill buffers) on the CPU."""
    import dnnlib
    device = 'meta' if kwargs['class_name'].startswith('fpa_plugin.') else 'cpu'
    with torch.device(device):
        return dnnlib.util.construct_class_by_name(**kwargs, c_dim=0, img_resolution=resolution, img_channels=3)


def n_params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize('name', DATASETS)
def test_preparation_makes_the_64x64_dataset(prepared, raw_images, name):
    with zipfile.ZipFile(prepared(name)) as z:
        pngs = [n for n in z.namelist() if n.endswith('.png')]
        assert len(pngs) == 6
        with z.open(pngs[0]) as f:
            assert PIL.Image.open(f).size == (64, 64)


def test_evaluation_command_parses(host):
    from metrics import metric_main
    for name in DATASETS:
        args = recipes.script_args(recipes.fill(recipes.load_recipe(name)['evaluate'], VALUES))
        ctx = host['evaluate'].make_context('calc_metrics.py', args)   # parses; raises on an unknown option
        assert all(metric_main.is_valid_metric(m) for m in ctx.params['metrics'])
        assert ctx.params['network_pkl'] == VALUES['network'] and ctx.params['mirror'] is False


@pytest.mark.parametrize('model', MODELS)
@pytest.mark.parametrize('name', DATASETS)
def test_dry_run(host, prepared, fpa_snapshot, tmp_path, name, model):
    run = recipes.load_recipe(name)['runs'][model]
    values = dict(data=prepared(name), outdir=tmp_path / 'runs', fpa_pkl=fpa_snapshot(name))
    output = call(host['train'], *recipes.script_args(recipes.fill(run['train'], values)), '--dry-run')
    assert 'Dry run; exiting.' in output and not (tmp_path / 'runs').exists()
    c = json.loads(output.split('Training options:')[1].split('Output directory:')[0])
    assert c['batch_size'] == run['batch'] and c['total_kimg'] == run['kimg'] and c['num_gpus'] == 1
    assert c['kimg_per_tick'] * c['network_snapshot_ticks'] == 100 and c['metrics'] == ['fid10k_full_jpeg']
    assert c['training_set_kwargs']['resolution'] == 64 and c['training_set_kwargs']['xflip'] is False
    assert 'augment_kwargs' not in c

    G, D = build(c['G_kwargs']), build(c['D_kwargs'])
    params = run.get('params_m', {})
    if model == 'stylegan2':
        assert G.img_resolution == 64 and c['loss_kwargs']['r1_gamma'] == pytest.approx(0.0256)
        return
    assert c['G_opt_kwargs']['lr'] == c['D_opt_kwargs']['lr'] == 2e-4 and c.get('ema_schedule') == 'reference'
    if model == 'fpa':
        assert c['G_kwargs']['first_step'] == 'reference'
        assert at_precision(n_params(G), params['G']) == TABLE3[name][0]
        assert at_precision(n_params(G) + n_params(D), params['G+D']) == TABLE3[name][1]
    elif model == 'fpa-unet':
        assert c['G_kwargs']['fpa_weights'] == 'raw' and c['loss_kwargs']['hinge_scale'] == 0.5
        assert n_params(G.unet) == UNET_PARAMS and at_precision(n_params(G.unet), params['U-Net']) == 8
        assert at_precision(n_params(G.fpa), TABLE3[name][0]) == TABLE3[name][0]   # the FPA of Table 3, frozen
        assert c['D_kwargs']['init_pkl'] == str(fpa_snapshot(name))        # D continues from the FPA run's
    else:
        assert (n_params(G), n_params(D)) == LIGHTGAN_PARAMS
        assert (at_precision(n_params(G), params['G']), at_precision(n_params(D), params['D'])) == (21.0, 12.3)


@pytest.mark.slow
def test_metfaces_unet_from_a_real_snapshot(host, prepared, tmp_path):
    """The one U-Net dry run above that uses a meta snapshot, with a real 0.9 GB one (a few GB of memory)."""
    from fpa_plugin.core.lightgan import DISC_SIZES
    from fpa_plugin.stylegan3.networks import FPAGenerator, LightGANDiscriminator
    kwargs = presets.generator_kwargs('metfaces', width=64)
    for key in ('width', 'height', 'channels'):
        del kwargs[key]
    G = FPAGenerator(c_dim=0, img_resolution=64, img_channels=3, **kwargs)
    D = LightGANDiscriminator(c_dim=0, img_resolution=64, img_channels=3, blur=False, **DISC_SIZES['paper'])
    pkl = tmp_path / 'metfaces.pkl'
    with open(pkl, 'wb') as f:
        pickle.dump(dict(G=G, G_ema=G, D=D, augment_pipe=None, training_set_kwargs=None), f)
    del G, D
    run = recipes.load_recipe('metfaces')['runs']['fpa-unet']
    values = dict(data=prepared('metfaces'), outdir=tmp_path / 'runs', fpa_pkl=pkl)
    output = call(host['train'], *recipes.script_args(recipes.fill(run['train'], values)), '--dry-run')
    assert 'Dry run; exiting.' in output
