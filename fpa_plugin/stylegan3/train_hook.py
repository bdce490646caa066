"""The plugin's entry into StyleGAN3's `train.py` (stylegan3_patches/03-plugin.patch).

`train.py` gains the plugin's options (`@train_hook.options`), accepts `--cfg` values from `CONFIGS`, and hands
those runs to `dispatch`, which builds the run's config from scratch here (the host's own configurations are
left exactly as upstream builds them) and launches it with train.py's own `launch_training`.
"""

import os

import click
import torch
from click.core import ParameterSource

import dnnlib

from fpa_plugin.core import painter, presets
from fpa_plugin.core.lightgan import DISC_SIZES
from fpa_plugin.core.lightgan_generator import GEN_SIZES
from fpa_plugin.core.unet import unet_kwargs_for
from fpa_plugin.stylegan3 import metrics as _metrics  # noqa: F401  (registers the plugin's metrics)

CONFIGS = ['fpa', 'fpa-unet', 'lightgan']
NETWORKS = 'fpa_plugin.stylegan3.networks'

#----------------------------------------------------------------------------
# Options. Every plugin option is None unless given, so a preset or a configuration's default can fill it.

_OPTIONS = [                      # (flag, click.option kwargs)
    ('--fpa-preset', dict(help='FPA generator preset (training_configs/presets)  [default: celeba]',
        type=click.Choice(presets.list_presets()))),
    ('--fpa-steps', dict(help='Painting steps T  [default: the preset\'s]', metavar='INT',
        type=click.IntRange(min=1))),
    ('--fpa-rule', dict(help='Learning rule  [default: delta]', type=click.Choice(list(painter.RULES)))),
    ('--fpa-impl', dict(help='Rule implementation  [default: the fastest]',
        type=click.Choice(['parallel', 'naive']))),
    ('--fpa-first-step', dict(help='Delta rule at t=1: paper (Eq. 9) or reference (no learning rate)',
        type=click.Choice(['paper', 'reference']))),
    ('--fpa-input', dict(help='Input generator version', type=click.Choice(['v1', 'v2']))),
    ('--fpa-latent', dict(help='Latent size d_latent', metavar='INT', type=click.IntRange(min=1))),
    ('--fpa-d-in', dict(help='v2 input piece size d_in', metavar='INT', type=click.IntRange(min=1))),
    ('--fpa-d-in-proj', dict(help="v2 input projection size d'_in", metavar='INT', type=click.IntRange(min=1))),
    ('--fpa-input-tanh', dict(help='v2: tanh on the input pieces', metavar='BOOL', type=bool)),
    ('--fpa-hidden', dict(help='LSTM width d_hidden', metavar='INT', type=click.IntRange(min=1))),
    ('--fpa-layers', dict(help='LSTM layers L', metavar='INT', type=click.IntRange(min=1))),
    ('--fpa-latent-to-init', dict(help='Initial LSTM state from z', metavar='BOOL', type=bool)),
    ('--fpa-amp', dict(help='Mixed precision for the LSTM and projections (the painter stays float32)',
        type=click.Choice(['bfloat16', 'float16']))),
    ('--fpa-out-tanh', dict(help='tanh on the painted image', metavar='BOOL', type=bool)),
    ('--ema-schedule', dict(help='EMA of G: stylegan (--ema-kimg half-life) or reference (the authors\' '
        'schedule)  [default: stylegan]', type=click.Choice(['stylegan', 'reference']))),
    ('--fpa-pkl', dict(help='fpa-unet: snapshot of the FPA run to refine', metavar='PKL', type=str)),
    ('--fpa-weights', dict(help='fpa-unet: the FPA from the snapshot\'s G_ema (ema) or G (raw, the reference '
        'code\'s choice)  [default: ema]', type=click.Choice(['ema', 'raw']))),
    ('--unet-size', dict(help='fpa-unet: U-Net capacity: paper (8M at 64x64), small, tiny  [default: paper]',
        type=click.Choice(['paper', 'small', 'tiny']))),
    ('--unet-disc', dict(help='fpa-unet: start D from the FPA run\'s D (fpa, as the reference) or afresh (scratch)'
        '  [default: fpa]', type=click.Choice(['fpa', 'scratch']))),
    ('--gen-size', dict(help='lightgan: generator capacity: paper (21M at 64x64), small, tiny  [default: paper]',
        type=click.Choice(['paper', 'small', 'tiny']))),
    ('--d-hinge-scale', dict(help='LightGAN D: scale of the hinge terms (0.5 = the reference\'s U-Net stage)'
        '  [default: 1]', metavar='FLOAT', type=click.FloatRange(min=0))),
    ('--disc', dict(help='Discriminator and loss  [default: lightgan]',
        type=click.Choice(['lightgan', 'stylegan2']))),
    ('--disc-size', dict(help='LightGAN D capacity: paper (12.3M at 64x64), small, tiny  [default: paper]',
        type=click.Choice(['paper', 'small', 'tiny']))),
    ('--lr', dict(help='Learning rate of G and D (plugin configs)  [default: 0.0002]',
        metavar='FLOAT', type=click.FloatRange(min=0, min_open=True))),
    ('--adam-betas', dict(help='Adam betas of G and D (plugin configs)  [default: 0.5,0.9]',
        metavar='B1,B2', type=str)),
    ('--gp-weight', dict(help='LightGAN D: gradient penalty weight  [default: 10]', metavar='FLOAT',
        type=click.FloatRange(min=0))),
    ('--gp-interval', dict(help='LightGAN D: gradient penalty every N steps  [default: 4]', metavar='INT',
        type=click.IntRange(min=1))),
    ('--ema-kimg', dict(help='EMA half-life of G in kimg (plugin configs)  [default: batch * 10/32]',
        metavar='KIMG', type=click.FloatRange(min=0))),
]
PLUGIN_OPTIONS = [flag[2:].replace('-', '_') for flag, _ in _OPTIONS]


def options(fn):
    """Decorator adding the plugin's options to train.py's command."""
    for flag, kwargs in reversed(_OPTIONS):
        fn = click.option(flag, **kwargs)(fn)
    return fn

#----------------------------------------------------------------------------

def dispatch(opts, launch_training, init_dataset_kwargs):
    """Called first thing in train.py's main. Returns True when the plugin ran (or dry-ran) the job."""
    ctx = click.get_current_context()
    given = {name for name in opts if ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT)}
    if opts.cfg not in CONFIGS:
        stray = [n for n in PLUGIN_OPTIONS if n in given]
        if stray:
            raise click.ClickException(f'--{stray[0].replace("_", "-")} only applies to --cfg={"|".join(CONFIGS)}')
        if opts.gamma is None:
            raise click.ClickException(f'Missing option \'--gamma\': --cfg={opts.cfg} needs an R1 weight')
        return False
    c, desc = build_config(opts, given, init_dataset_kwargs)
    launch_training(c=c, desc=desc, outdir=opts.outdir, dry_run=opts.dry_run)
    return True

#----------------------------------------------------------------------------

def _betas(text):
    try:
        b1, b2 = (float(x) for x in text.split(','))
    except ValueError:
        raise click.ClickException(f'--adam-betas must be two numbers like 0.5,0.9, got {text!r}') from None
    return [b1, b2]


def painter_kwargs(opts, resolution):
    """FastWeightPainter kwargs (without the image size) from --fpa-preset and the explicit --fpa-* options."""
    kw = presets.generator_kwargs(opts.fpa_preset or 'celeba', width=resolution,
        steps=opts.fpa_steps, rule=opts.fpa_rule, impl=opts.fpa_impl, first_step=opts.fpa_first_step,
        input_version=opts.fpa_input, z_dim=opts.fpa_latent, d_in=opts.fpa_d_in, d_in_proj=opts.fpa_d_in_proj,
        input_tanh=opts.fpa_input_tanh, hidden=opts.fpa_hidden, layers=opts.fpa_layers,
        latent_to_init=opts.fpa_latent_to_init, out_tanh=opts.fpa_out_tanh, amp=opts.fpa_amp)
    for key in ('width', 'height', 'channels'):
        del kw[key]
    return kw


def build_config(opts, given, init_dataset_kwargs):
    """The run's config (what training_options.json records) and its directory description."""
    c = dnnlib.EasyDict()
    c.training_set_kwargs, dataset_name = init_dataset_kwargs(data=opts.data)
    if opts.cond and not c.training_set_kwargs.use_labels:
        raise click.ClickException('--cond=True requires labels specified in dataset.json')
    c.training_set_kwargs.use_labels = opts.cond
    c.training_set_kwargs.xflip = opts.mirror
    res = c.training_set_kwargs.resolution

    c.num_gpus = opts.gpus
    c.batch_size = opts.batch
    c.batch_gpu = opts.batch_gpu or opts.batch // opts.gpus
    if c.batch_size % c.num_gpus != 0 or c.batch_size % (c.num_gpus * c.batch_gpu) != 0:
        raise click.ClickException('--batch must be a multiple of --gpus times --batch-gpu')
    c.data_loader_kwargs = dnnlib.EasyDict(pin_memory=torch.cuda.is_available(), prefetch_factor=2,
                                           num_workers=opts.workers)
    c.metrics = opts.metrics
    from metrics import metric_main
    bad = [m for m in c.metrics if not metric_main.is_valid_metric(m)]
    if bad:
        raise click.ClickException('\n'.join(['--metrics can only contain the following values:']
                                             + metric_main.list_valid_metrics()))
    c.total_kimg, c.kimg_per_tick = opts.kimg, opts.tick
    c.image_snapshot_ticks = c.network_snapshot_ticks = opts.snap
    c.random_seed = c.training_set_kwargs.random_seed = opts.seed
    c.cudnn_benchmark = not opts.nobench

    # Generator.
    _only_for(given, opts.cfg, {'fpa': [n for n in PLUGIN_OPTIONS if n.startswith('fpa_') and n not in UNET_OPTIONS],
                                'fpa-unet': UNET_OPTIONS, 'lightgan': ['gen_size']})
    fpa_D = None
    if opts.cfg == 'fpa':
        c.G_kwargs = dnnlib.EasyDict(class_name=f'{NETWORKS}.FPAGenerator', **painter_kwargs(opts, res))
    elif opts.cfg == 'fpa-unet':
        c.G_kwargs, fpa_D = _fpa_unet_generator(opts, c.training_set_kwargs)
    else:
        size = dict(GEN_SIZES[opts.gen_size or 'paper'])
        c.G_kwargs = dnnlib.EasyDict(class_name=f'{NETWORKS}.LightGANGenerator', z_dim=size.pop('latent_dim'), **size)

    # Optimisers: the paper's Adam for both networks unless --glr / --dlr are given.
    lr = opts.lr if opts.lr is not None else 2e-4
    betas = _betas(opts.adam_betas) if opts.adam_betas is not None else [0.5, 0.9]
    c.G_opt_kwargs = dnnlib.EasyDict(class_name='torch.optim.Adam', lr=opts.glr if 'glr' in given else lr,
                                     betas=betas, eps=1e-8)
    c.D_opt_kwargs = dnnlib.EasyDict(class_name='torch.optim.Adam', lr=opts.dlr if 'dlr' in given else lr,
                                     betas=betas, eps=1e-8)
    c.ema_kimg = opts.ema_kimg if opts.ema_kimg is not None else c.batch_size * 10 / 32
    if opts.ema_schedule == 'reference':
        c.ema_schedule = 'reference'

    # Discriminator and loss. FPA + U-Net starts from the FPA run's D unless --unet-disc=scratch.
    disc = opts.disc or 'lightgan'
    if fpa_D is not None:
        for name in ('disc', 'disc_size', 'cbase', 'cmax', 'mbstd_group', 'freezed'):
            if name in given:
                raise click.ClickException(f'--{name.replace("_", "-")}: the D comes from --fpa-pkl '
                                           f'(use --unet-disc=scratch to choose another)')
        disc = 'lightgan'
    if disc == 'lightgan':
        for name in ('gamma', 'cbase', 'cmax', 'freezed'):
            if name in given:
                raise click.ClickException(f'--{name.replace("_", "-")} applies to --disc=stylegan2 only')
        c.D_kwargs = fpa_D or dnnlib.EasyDict(class_name=f'{NETWORKS}.LightGANDiscriminator',
            blur=opts.cfg == 'lightgan', **DISC_SIZES[opts.disc_size or 'paper'])   # the baseline's D blurs
        if 'mbstd_group' in given:                                      # off unless asked: not in the reference
            c.D_kwargs.mbstd_group = opts.mbstd_group
        c.loss_kwargs = dnnlib.EasyDict(class_name='fpa_plugin.stylegan3.loss.LightGANLoss', batch_size=c.batch_size,
            gp_weight=opts.gp_weight if opts.gp_weight is not None else 10,
            gp_interval=opts.gp_interval if opts.gp_interval is not None else 4,
            hinge_scale=opts.d_hinge_scale if opts.d_hinge_scale is not None else 1)
        c.G_reg_interval = c.D_reg_interval = None
    else:
        for name in ('gp_weight', 'gp_interval', 'disc_size', 'd_hinge_scale'):
            if name in given:
                raise click.ClickException(f'--{name.replace("_", "-")} applies to --disc=lightgan only')
        if c.batch_gpu < opts.mbstd_group:
            raise click.ClickException('--batch-gpu cannot be smaller than --mbstd')
        c.D_kwargs = fpa_D or dnnlib.EasyDict(class_name='training.networks_stylegan2.Discriminator',
            channel_base=opts.cbase, channel_max=opts.cmax, block_kwargs=dnnlib.EasyDict(freeze_layers=opts.freezed),
            mapping_kwargs=dnnlib.EasyDict(), epilogue_kwargs=dnnlib.EasyDict(mbstd_group_size=opts.mbstd_group))
        if opts.fp32:
            c.D_kwargs.num_fp16_res, c.D_kwargs.conv_clamp = 0, None
        gamma = opts.gamma if opts.gamma is not None else 0.0002 * res ** 2 / c.batch_size  # StyleGAN2-ADA heuristic
        c.loss_kwargs = dnnlib.EasyDict(class_name='training.loss.StyleGAN2Loss', r1_gamma=gamma)

    # Augmentation: none unless asked for (the paper trains without).
    aug = opts.aug if 'aug' in given else 'noaug'
    if aug != 'noaug':
        c.augment_kwargs = dnnlib.EasyDict(class_name='training.augment.AugmentPipe', xflip=1, rotate90=1, xint=1,
            scale=1, rotate=1, aniso=1, xfrac=1, brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)
        if aug == 'ada':
            c.ada_target = opts.target
        if aug == 'fixed':
            c.augment_p = opts.p

    if opts.resume == 'auto':
        c.resume_auto = True                                            # resume.launch_auto takes it from here
    elif opts.resume is not None:
        c.resume_pkl = opts.resume
        c.ada_kimg = 100
        c.ema_rampup = None

    _check_networks(c)
    size = {'fpa': opts.fpa_preset or 'celeba', 'fpa-unet': opts.unet_size or 'paper', 'lightgan': opts.gen_size or
            'paper'}[opts.cfg]
    desc = f'{opts.cfg}-{dataset_name}-gpus{c.num_gpus}-batch{c.batch_size}-{size}'
    if disc != 'lightgan':
        desc += f'-{disc}'
    if opts.desc is not None:
        desc += f'-{opts.desc}'
    return c, desc


UNET_OPTIONS = ['fpa_pkl', 'fpa_weights', 'unet_size', 'unet_disc']


def _only_for(given, cfg, owners):
    """Options that only one configuration takes must not be given to another."""
    for owner, names in owners.items():
        for name in names:
            if name in given and cfg != owner:
                raise click.ClickException(f'--{name.replace("_", "-")} only applies to --cfg={owner}')


def _fpa_unet_generator(opts, training_set_kwargs):
    """G_kwargs for FPA + U-Net from the FPA snapshot (--fpa-pkl), and the D_kwargs to start from its D
    (None with --unet-disc=scratch). Checks that the snapshot is an FPA that can paint this data."""
    import dnnlib
    import legacy
    if opts.fpa_pkl is None:
        raise click.ClickException('--cfg=fpa-unet needs --fpa-pkl=PATH: a network snapshot of an FPA run')
    try:
        with dnnlib.util.open_url(opts.fpa_pkl) as f:
            data = legacy.load_network_pkl(f)
    except (OSError, ValueError) as err:
        raise click.ClickException(f'--fpa-pkl: cannot read {opts.fpa_pkl}: {err}') from None
    except Exception as err:                                            # noqa: BLE001 (not a network pickle)
        raise click.ClickException(f'--fpa-pkl: {opts.fpa_pkl} is not a StyleGAN3 network pickle ({err})') from None
    G = data['G_ema']
    if type(G).__name__ != 'FPAGenerator':
        raise click.ClickException(f'--fpa-pkl: {opts.fpa_pkl} is not an FPA network pickle: its generator is a '
                                   f'{type(G).__name__}; train one with --cfg=fpa first')
    ds = dnnlib.util.construct_class_by_name(**training_set_kwargs)
    if (G.img_resolution, G.img_channels) != (ds.resolution, ds.num_channels) or G.c_dim != ds.label_dim:
        raise click.ClickException(f'--fpa-pkl: the FPA paints {G.img_resolution}x{G.img_resolution} images with '
            f'{G.img_channels} channels and {G.c_dim} labels; the data has {ds.resolution}x{ds.resolution}, '
            f'{ds.num_channels} channels and {ds.label_dim} labels')
    common = ('z_dim', 'c_dim', 'img_resolution', 'img_channels')
    G_kwargs = dnnlib.EasyDict(class_name=f'{NETWORKS}.FPAUNetGenerator', z_dim=G.z_dim,
        painter_kwargs={k: v for k, v in G.init_kwargs.items() if k not in common},
        unet_kwargs=unet_kwargs_for(ds.resolution, opts.unet_size or 'paper'),
        fpa_pkl=os.path.abspath(opts.fpa_pkl), fpa_weights=opts.fpa_weights or 'ema')
    D_kwargs = None
    if (opts.unet_disc or 'fpa') == 'fpa':
        D = data['D']
        if type(D).__name__ != 'LightGANDiscriminator':
            raise click.ClickException(f'--fpa-pkl: its D is a {type(D).__name__}, not the LightGAN D this option '
                                       f'continues; pass --unet-disc=scratch')
        D_kwargs = dnnlib.EasyDict(class_name=f'{NETWORKS}.LightGANDiscriminator', init_pkl=os.path.abspath(
            opts.fpa_pkl), **{k: v for k, v in D.init_kwargs.items() if k not in common + ('init_pkl',)})
    return G_kwargs, D_kwargs


def _check_networks(c):
    """Build G and D on the meta device (no memory, no time): a configuration the data cannot take fails here,
    with a clear message, before any run directory exists."""
    ds = dnnlib.util.construct_class_by_name(**c.training_set_kwargs)
    common = dict(c_dim=ds.label_dim, img_resolution=ds.resolution, img_channels=ds.num_channels)
    for name, kwargs in [('generator', c.G_kwargs), ('discriminator', c.D_kwargs)]:
        if not kwargs.class_name.startswith('fpa_plugin.'):
            continue                                                    # the host's own networks check themselves
        try:
            with torch.device('meta'):
                dnnlib.util.construct_class_by_name(**kwargs, **common)
        except (ValueError, TypeError, AssertionError, RuntimeError) as err:
            raise click.ClickException(f'Cannot build the {name} for {ds.resolution}x{ds.resolution} data with '
                                       f'{ds.num_channels} channels: {err}') from None

#----------------------------------------------------------------------------
