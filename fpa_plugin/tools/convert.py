"""`fpa-convert`: the authors' trained FPAs (IDSIA/fpainter) as StyleGAN3 network pickles of this plugin's classes,
for gen_images.py, calc_metrics.py and fpa-paint.

    fpa-convert --source=celeba/model_1.pt --dest=celeba.pkl --flags-from=celeba_train.sh

The authors' checkpoints (`model_*.pt`, from their Trainer.save) hold the GAN's state dict under 'GAN': `G.*` (the
generator), `GE.*` (its EMA), `D.*` (the discriminator; `D_aug.D.*` is D again, and U-Net models list their FPA
and U-Net a second time under `G.mod_dict.*`), the optimisers' states and the version, but no hyper-parameters.
What the tensors fix is read from them:

    model type          v2 if G has input_generator.*, else v1; FPA + U-Net if G has u_net.*
    image size, channels D's number of residual layers, its input convolution (and kvb_net: C (2 S + 1) outputs)
    FPA                 z_dim, hidden, layers, latent_to_init; v2: d_in, d'_in and T (input_generator: T d_in rows)
    U-Net, D            widths and levels; D's feature maps and attention resolutions

What they do not fix is given, as options or as the reference's own flags read from its training script
(--flags-from); the defaults are the paper's models (all trained with --use_softmax --out_tanh):

    --steps             v1 only (v1 feeds z at every step, so T is not in the weights)   --num_decoding_steps (64)
    --out-tanh          tanh on the image                                                --out_tanh
    --input-tanh        v2: tanh on the input generator's output                         --v2_input_sigmoid
    --softmax           softmax on the keys                                              --use_softmax

U-Net models are converted as the paper's recipe (--unet_tanh --out_tanh): G(z) = tanh(UNet(tanh(W_T))).

The generators are FPAGenerator / FPAUNetGenerator with first_step='reference': the reference writes
W_1 = v_1 phi(k_1)^T, without the learning rate of Eq. 9 at t = 1. Its images are tanh outputs in [-1, 1], but its
code saves and scores clamp(x, 0, 1) (its real images are in [0, 1]); with output_range='reference' (the default,
--output-range) the generators output 2 clamp(x, 0, 1) - 1, which StyleGAN3's tools ((x + 1) 127.5) turn into the
pixels the authors' code saves. The pickle's G_ema is GE (--weights ema, the default: the reference's FIDs and
samples come from GE), its G is G. The discriminator is LightGANDiscriminator with the last layer of both heads
negated: the reference's D scores real images low, StyleGAN3's high.
"""

import os
import pickle
import re
import shlex
import tempfile
from pathlib import Path

import click
import torch

MODEL_TYPES = {('v1', False): 'lstm_delta', ('v1', True): 'lstm_delta_unet',
               ('v2', False): 'lstm_delta_split_v2', ('v2', True): 'lstm_delta_split_v2_unet'}
G_MODULES = ('latent_to_init', 'input_generator', 'per_time_linear_input', 'decoder_rnn', 'kvb_net')  # in order
D_MODULES = ('non_residual_layers', 'residual_layers', 'to_logits', 'to_shape_disc_out', 'decoder1', 'decoder2')
LSTM_KEYS = ('decoder_rnn.weight_ih_l0', 'decoder_rnn.weight_hh_l0', 'decoder_rnn.bias_ih_l0', 'decoder_rnn.bias_hh_l0')
REQUIRED = {                                                    # what the inference reads, per part of G
    'v1': ('latent_to_init.weight', 'latent_to_init.bias', *LSTM_KEYS, 'kvb_net.weight', 'kvb_net.bias'),
    'v2': ('input_generator.weight', 'input_generator.bias', 'per_time_linear_input.weight',
           'per_time_linear_input.bias', *LSTM_KEYS, 'kvb_net.weight', 'kvb_net.bias'),
    'unet': ('u_net.init_conv.weight', 'u_net.downs.0.0.block1.proj.weight'),
    'D': ('to_shape_disc_out.0.weight', 'residual_layers.0.0.branches.0.1.weight'),
}
# Constants of the reference's classes (not arguments there, so never different in a checkpoint).
REF_UNET = dict(groups=8, attn_heads=4, attn_dim_head=32)      # unet.py: Unet's ResnetBlock and attention
REF_D = dict(attn_heads=8, attn_dim_head=64)                    # painter.py: LinearAttention defaults
PAPER = dict(out_tanh=True, input_tanh=False, softmax=True, steps=64)
SHOW = 12                                                       # keys listed per kind in an error


class ConversionError(click.ClickException):
    pass

#----------------------------------------------------------------------------
# Key names: reference -> ours, as regular-expression substitutions applied in order, and back (the inverse
# substitutions in reverse order) to name what a checkpoint lacks in its own terms. `{i}` is an index.

def _rules(pairs):
    def rx(src, dst):
        anchor = src.startswith('^')
        pattern = ('^' if anchor else '') + re.escape(src.lstrip('^')).replace(r'\{i\}', r'(?P<i>\d+)')
        return re.compile(pattern), dst.lstrip('^').replace('{i}', r'\g<i>')
    return [rx(a, b) for a, b in pairs], [rx(b, a) for a, b in reversed(pairs)]


def _apply(rules, key):
    for pattern, repl in rules:
        key = pattern.sub(repl, key)
    return key

FPA_NAMES = _rules([                                            # reference G -> FastWeightPainter
    ('^latent_to_init.', '^sequence_processor.latent_to_init.'),
    ('^input_generator.', '^input_generator.split.'),
    ('^per_time_linear_input.', '^input_generator.proj.'),
    ('^decoder_rnn.', '^sequence_processor.lstm.'),
    ('^kvb_net.', '^update_net.linear.'),
])
UNET_NAMES = _rules([                                           # unet.py's Unet -> core.unet.UNet
    *[(f'^{part}.{{i}}.{j}.', f'^{part}.{{i}}.{name}.') for part in ('downs', 'ups')
      for j, name in enumerate(('block1', 'block2', 'attn', 'resample'))],
    ('^final_res_block.', '^final_block.'),
    ('.proj.', '.conv.'),
    ('.res_conv.', '.skip.'),
])
D_NAMES = _rules([                                              # painter.py's Discriminator (Blur = Identity)
    ('^non_residual_layers.{i}.1.', '^plain.{i}.0.'),           # -> core.lightgan.LightGANDiscriminator
    ('^residual_layers.{i}.0.', '^blocks.{i}.'),
    ('^residual_layers.{i}.1.', '^attns.{i}.'),
    ('^to_logits.1.', '^to_logits.0.'),
    ('^to_logits.3.', '^to_logits.2.'),
    ('^to_shape_disc_out.', '^head32.'),
    ('.branches.0.1.', '.branches.0.0.'),
    ('.branches.0.3.', '.branches.0.2.'),
    ('.branches.1.2.', '.branches.1.1.'),
    ('.to_lin_kv.net.', '.to_lin_kv.'),
    *[(f'^decoder{a}.layers.{k}.1.', f'^decoder{b}.net.{3 * k + 1}.') for a, b in ((1, 8), (2, 16)) for k in range(4)],
])


def generator_key(key):
    """Reference G key -> our FPAGenerator / FPAUNetGenerator key."""
    if key.startswith('u_net.'):
        return 'unet.' + _apply(UNET_NAMES[0], key[len('u_net.'):])
    return 'fpa.' + _apply(FPA_NAMES[0], key)


def reference_generator_key(key):
    if key.startswith('unet.'):
        return 'u_net.' + _apply(UNET_NAMES[1], key[len('unet.'):])
    return _apply(FPA_NAMES[1], key[len('fpa.'):])


def discriminator_key(key):
    """Reference D key -> our LightGANDiscriminator (StyleGAN3 wrapper) key."""
    return 'net.' + _apply(D_NAMES[0], key)


def reference_discriminator_key(key):
    return _apply(D_NAMES[1], key[len('net.'):])

#----------------------------------------------------------------------------
# Reading a checkpoint.

def _listing(keys):
    keys = sorted(keys)
    more = f', ... ({len(keys) - SHOW} more)' if len(keys) > SHOW else ''
    return ', '.join(keys[:SHOW]) + more


def _key_error(what, unexpected=(), missing=()):
    lines = [what]
    if unexpected:
        lines.append(f'  unexpected keys ({len(unexpected)}): {_listing(unexpected)}')
    if missing:
        lines.append(f'  missing keys ({len(missing)}): {_listing(missing)}')
    return ConversionError('\n'.join(lines))


def load_checkpoint(path):
    """(the GAN's state dict, the lightweight-gan version or None) of a reference checkpoint: Trainer.save's dict,
    or the bare state dict."""
    path = Path(path)
    if not path.is_file():
        raise ConversionError(f'No checkpoint at {path}')
    try:
        data = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:                                            # noqa: BLE001  (whatever the file holds)
        raise ConversionError(f'{path} is not a PyTorch checkpoint that can be read safely: '
                              f'{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ""}') from None
    version = None
    if isinstance(data, dict) and isinstance(data.get('GAN'), dict):
        version, data = data.get('version'), data['GAN']
    if not isinstance(data, dict) or not data or not all(isinstance(v, torch.Tensor) for v in data.values()):
        found = _listing(map(str, data)) if isinstance(data, dict) else type(data).__name__
        raise ConversionError(f'{path} is not a checkpoint of the authors\' code: expected a dict with the GAN\'s '
                              f'state dict under \'GAN\' (their Trainer.save), found {found or "an empty dict"}')
    return data, version


def split_networks(state):
    """{'G': ..., 'GE': ..., 'D': ...} with the prefixes removed; D_aug.D.* must repeat D.*."""
    parts, unexpected = {'G': {}, 'GE': {}, 'D': {}}, []
    for key, t in state.items():
        head, _, rest = key.partition('.')
        if head in parts:
            parts[head][rest] = t
        elif key.startswith('D_aug.D.'):
            twin = state.get('D.' + key[len('D_aug.D.'):])
            if twin is None or twin.shape != t.shape or not torch.equal(twin, t):
                unexpected.append(key)
        else:
            unexpected.append(key)
    if unexpected:
        raise _key_error('The checkpoint has keys outside G.*, GE.*, D.* (and D_aug.D.*, a copy of D.*):',
                         unexpected)
    return parts

#----------------------------------------------------------------------------
# The reference's flags (main.py's argparse names), from its training script: `--name value`, `--name=value`.

BOOLEAN_FLAGS = {'out_tanh', 'v2_input_sigmoid', 'use_softmax', 'unet_tanh', 'use_latent_to_init', 'val_tanh',
                 'no_sigmoid_lr', 'use_pos_enc', 'vect_lr', 'use_learned_init', 'transparent', 'greyscale'}
CHECKED_FLAGS = ('model_type', 'image_size', 'latent_dim', 'rnn_hidden_size', 'num_layers', 'mini_latent_dim',
                 'mini_input_size', 'num_decoding_steps', 'use_latent_to_init')     # compared with the weights
UNSUPPORTED_FLAGS = ('val_tanh', 'no_sigmoid_lr')                # change G's function; not in FastWeightPainter


def reference_flags(text):
    """{flag: value (str) or True} of every `--flag` in a shell command line or script."""
    tokens = shlex.split(text.replace('\\\n', ' '), comments=True)
    flags = {}
    for i, tok in enumerate(tokens):
        if not tok.startswith('--') or len(tok) == 2:
            continue
        name, eq, value = tok[2:].partition('=')
        if not eq:
            following = tokens[i + 1] if i + 1 < len(tokens) else None
            value = True if name in BOOLEAN_FLAGS or following is None or following.startswith('--') else following
        flags[name] = value
    return flags


def settings(kind, given, flags):
    """The options the weights do not fix: explicit options, else the script's flags (with main.py's defaults for
    those it lacks), else the paper's. -> (values, {name: where each came from})."""
    version, unet = kind
    values, origin = {}, {}
    from_flags = None if flags is None else dict(out_tanh='out_tanh' in flags,
        input_tanh='v2_input_sigmoid' in flags, softmax='use_softmax' in flags,
        steps=_int_flag(flags, 'num_decoding_steps', 64))
    for name in PAPER:
        if given.get(name) is not None:
            values[name], origin[name] = given[name], 'option'
        elif from_flags is not None:
            values[name], origin[name] = from_flags[name], '--flags-from'
        else:
            values[name], origin[name] = PAPER[name], "paper's default"
    if version == 'v1' and given.get('input_tanh') is not None:
        raise ConversionError('--input-tanh/--no-input-tanh applies to v2 models only (v1 has no input generator)')
    if unet and not values['out_tanh']:
        raise ConversionError('FPA + U-Net is converted as the paper\'s recipe, G(z) = tanh(UNet(tanh(W_T))) '
                              '(--unet_tanh --out_tanh): it cannot be converted without --out-tanh')
    if unet and flags is not None and 'unet_tanh' not in flags:
        raise ConversionError('The flags lack --unet_tanh: FPA + U-Net is converted as the paper\'s recipe, '
                              'G(z) = tanh(UNet(tanh(W_T))), only')
    bad = [f'--{name}' for name in UNSUPPORTED_FLAGS if flags and name in flags]
    if bad:
        raise ConversionError(f'The flags include {", ".join(bad)}, which FastWeightPainter does not implement')
    return values, origin


def _int_flag(flags, name, default):
    value = flags.get(name, default)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConversionError(f'--flags-from: --{name} must be a number, not {value!r}') from None


def check_flags(flags, arch):
    """The script's flags must describe this checkpoint (those it sets explicitly)."""
    known = dict(model_type=arch['model_type'], image_size=arch['resolution'], latent_dim=arch['z_dim'],
                 rnn_hidden_size=arch['painter']['hidden'], num_layers=arch['painter']['layers'])
    if arch['version'] == 'v2':
        known.update(mini_latent_dim=arch['painter']['d_in'], mini_input_size=arch['painter']['d_in_proj'],
                     num_decoding_steps=arch['painter']['steps'], use_latent_to_init=arch['painter']['latent_to_init'])
    wrong = []
    for name in CHECKED_FLAGS:
        if name not in flags or name not in known:
            continue
        value = flags[name] if name in BOOLEAN_FLAGS or name == 'model_type' else _int_flag(flags, name, None)
        if value != known[name]:
            wrong.append(f'--{name} {flags[name]} (the checkpoint: {known[name]})')
    if 'use_latent_to_init' in known and 'use_latent_to_init' not in flags and known['use_latent_to_init']:
        wrong.append('no --use_latent_to_init (the checkpoint has latent_to_init)')
    if wrong:
        raise ConversionError('--flags-from: the flags do not describe this checkpoint: ' + '; '.join(wrong))

#----------------------------------------------------------------------------
# The architecture, from the shapes.

def _count(state, pattern):
    rx = re.compile(pattern)
    return len({m[1] for k in state if (m := rx.match(k))})


def _shape(t):
    return tuple(t.shape)


def model_kind(G, prefix='G.'):
    """('v1' | 'v2', has U-Net) from G's keys; a clear error for anything else."""
    version = 'v2' if any(k.startswith(('input_generator.', 'per_time_linear_input.')) for k in G) else 'v1'
    unet = any(k.startswith('u_net.') for k in G)
    known = G_MODULES + (('u_net', 'mod_dict') if unet else ())
    unexpected = [prefix + k for k in G if k.split('.')[0] not in known]
    required = REQUIRED[version] + (REQUIRED['unet'] if unet else ())
    missing = [prefix + k for k in required if k not in G]
    if unexpected or missing:
        types = ', '.join(MODEL_TYPES.values())
        raise _key_error(f'{prefix[:-1]} is not an FPA generator of a known type ({types}; delta rule, '
                         f'without --use_pos_enc, --use_learned_init, --wide_out_dim):', unexpected, missing)
    return version, unet


def infer_discriminator(D):
    missing = ['D.' + k for k in REQUIRED['D'] if k not in D]
    unexpected = ['D.' + k for k in D if k.split('.')[0] not in D_MODULES]
    if missing or unexpected:
        raise _key_error('D is not the discriminator of the authors\' FPA GANs:', unexpected, missing)
    n_res = _count(D, r'residual_layers\.(\d+)\.')
    log2 = n_res + 3 + _count(D, r'non_residual_layers\.(\d+)\.')
    top = min(8, log2)
    convs = [f'residual_layers.{i}.0.branches.0.1.weight' for i in range(n_res)]
    absent = ['D.' + k for k in convs if k not in D]
    if absent:
        raise _key_error('D: residual layers are missing:', missing=absent)
    chans = [D[k].shape[0] for k in convs]                             # output of layer i: resolution 2^(top-1-i)
    fits = [(coef, max(chans)) for coef in [12, *range(1, 25)]
            if all(min(2 ** (coef - (top - 1 - i)), max(chans)) == c for i, c in enumerate(chans))]
    if not fits:
        raise ConversionError(f'D: the residual layers\' widths {chans} do not follow the reference\'s '
                              f'min(2^(coef - log2 res), fmap_max)')
    coef, fmap_max = fits[0]
    head = D['to_shape_disc_out.0.weight']
    attn_res = tuple(2 ** (top - i) for i in range(n_res) if any(k.startswith(f'residual_layers.{i}.1.') for k in D))
    return dict(resolution=2 ** log2, channels=head.shape[1], kwargs=dict(
        fmap_max=fmap_max, fmap_inverse_coef=coef, head32_channels=head.shape[0], attn_res=attn_res, attn_on_image=True,
        **REF_D))


def infer(parts, given, flags=None, output_range='reference'):
    """Everything needed to build our networks: model type, sizes, FastWeightPainter / UNet / D kwargs."""
    G = parts['G']
    if not G:
        raise _key_error('The checkpoint has no generator.', missing=['G.*'])
    version, unet = model_kind(G)
    disc = infer_discriminator(parts['D'])
    S, C = disc['resolution'], disc['channels']
    values, origin = settings((version, unet), given, flags)
    painter = dict(hidden=G['decoder_rnn.weight_hh_l0'].shape[1], layers=_count(G, r'decoder_rnn\.weight_ih_l(\d+)$'),
                   rule='delta', first_step='reference', key_activation='softmax' if values['softmax'] else 'identity',
                   out_tanh=values['out_tanh'], input_version=version, output_range=output_range)
    if version == 'v2':
        d_in_proj, d_in = G['per_time_linear_input.weight'].shape
        rows, z_dim = G['input_generator.weight'].shape
        if rows % d_in:
            raise ConversionError(f'G.input_generator.weight has shape {_shape(G["input_generator.weight"])}: its '
                                  f'rows should be T * d_in, a multiple of d_in = {d_in} (G.per_time_linear_input)')
        steps = rows // d_in
        if given.get('steps') is not None and given['steps'] != steps:
            raise ConversionError(f'--steps {given["steps"]}: this v2 model paints in T = {steps} steps '
                                  f'(G.input_generator.weight: {rows} rows = T * d_in, d_in = {d_in})')
        origin['steps'] = 'weights'
        painter.update(d_in=d_in, d_in_proj=d_in_proj, input_tanh=values['input_tanh'],
                       latent_to_init='latent_to_init.weight' in G)
    else:
        z_dim, steps = G['latent_to_init.weight'].shape[1], values['steps']
        painter.update(latent_to_init=True)
        origin.pop('input_tanh')
    painter['steps'] = steps
    arch = dict(version=version, unet=unet, model_type=MODEL_TYPES[version, unet], resolution=S, channels=C,
                z_dim=z_dim, painter=painter, disc=disc['kwargs'], origin=origin)
    if unet:
        dim = G['u_net.init_conv.weight'].shape[0]
        levels = _count(G, r'u_net\.downs\.(\d+)\.')
        widths = [G.get(f'u_net.downs.{i}.0.block1.proj.weight') for i in range(levels)]
        if any(w is None for w in widths):
            raise _key_error('G.u_net: levels are missing:', missing=[
                f'G.u_net.downs.{i}.0.block1.proj.weight' for i, w in enumerate(widths) if w is None])
        arch['unet_kwargs'] = dict(dim=dim, dim_mults=tuple(w.shape[0] // dim for w in widths), **REF_UNET)
    if flags is not None:
        check_flags(flags, arch)
    return arch

#----------------------------------------------------------------------------
# Our networks, and the checkpoint's tensors in them.

def build_networks(arch):
    """(G, D) of this plugin's StyleGAN3 classes for `arch` (imports the StyleGAN3 checkout)."""
    from fpa_plugin.stylegan3 import checkout
    try:
        checkout.import_host()
    except checkout.CheckoutError as err:
        raise ConversionError(str(err)) from None
    from fpa_plugin.stylegan3 import networks
    common = dict(c_dim=0, img_resolution=arch['resolution'], img_channels=arch['channels'])
    if arch['unet']:
        G = networks.FPAUNetGenerator(z_dim=arch['z_dim'], **common, painter_kwargs=arch['painter'],
                                      unet_kwargs=arch['unet_kwargs'], output_range=arch['painter']['output_range'])
    else:
        G = networks.FPAGenerator(z_dim=arch['z_dim'], **common, **arch['painter'])
    D = networks.LightGANDiscriminator(**common, **arch['disc'])
    return G, D


def _aliases(G, prefix):
    """U-Net models: G.mod_dict.* repeats the FPA's modules (`base`, in construction order) and the U-Net."""
    base = [m for m in G_MODULES if any(k.startswith(m + '.') for k in G)]
    unexpected = []
    for key, t in G.items():
        if not key.startswith('mod_dict.'):
            continue
        m = re.match(r'mod_dict\.(?:base\.(\d+)|unet\.0)\.(.+)$', key)
        twin = None
        if m and m[1] is None:
            twin = 'u_net.' + m[2]
        elif m and int(m[1]) < len(base):
            twin = f'{base[int(m[1])]}.{m[2]}'
        if twin not in G or G[twin].shape != t.shape or not torch.equal(G[twin], t):
            unexpected.append(prefix + key)
    return unexpected


def load_weights(module, state, prefix, to_ours, to_reference, negate=()):
    """Copy the checkpoint's tensors (reference names, without `prefix`) into `module`; every tensor must find its
    place, with its shape, and every one of ours must be given."""
    targets = module.state_dict()
    mapped, unexpected, mismatched = {}, [], []
    for key, t in state.items():
        if key.startswith('mod_dict.'):
            continue                                                    # checked by _aliases
        ours = to_ours(key)
        if ours not in targets:
            unexpected.append(prefix + key)
        elif targets[ours].shape != t.shape:
            mismatched.append(f'{prefix}{key}: {_shape(t)} in the checkpoint, {_shape(targets[ours])} expected')
        else:
            mapped[ours] = -t if ours in negate else t
    missing = [prefix + to_reference(k) for k in targets if k not in mapped]
    if mismatched:
        raise ConversionError(f'{prefix[:-1]}: shapes that do not fit the architecture inferred from the others:\n  '
                              + '\n  '.join(mismatched))
    if unexpected or missing:
        raise _key_error(f'{prefix[:-1]} does not match the architecture inferred from its shapes:', unexpected,
                         missing)
    with torch.no_grad():
        for key, t in mapped.items():
            targets[key].copy_(t)


def convert(state, given, flags=None, weights='ema', output_range='reference'):
    """-> (StyleGAN3 snapshot dict, arch)."""
    parts = split_networks(state)
    arch = infer(parts, given, flags, output_range)
    G, D = build_networks(arch)
    sources = {'G': 'G', 'G_ema': 'GE' if weights == 'ema' else 'G'}
    if not parts[sources['G_ema']]:
        raise ConversionError('The checkpoint has no GE.* (the EMA generator): use --weights raw')
    nets = {}
    for name, src in sources.items():
        net = G if name == 'G' else type(G)(**G.init_kwargs)
        unexpected = _aliases(parts[src], f'{src}.') if arch['unet'] else []
        if unexpected:
            raise _key_error(f'{src}.mod_dict.* should repeat {src}\'s own tensors:', unexpected)
        load_weights(net, parts[src], f'{src}.', generator_key, reference_generator_key)
        nets[name] = net
    last = lambda seq, name: {f'net.{name}.{len(seq) - 1}.weight', f'net.{name}.{len(seq) - 1}.bias'}
    negate = last(D.net.to_logits, 'to_logits') | last(D.net.head32, 'head32')
    load_weights(D, parts['D'], 'D.', discriminator_key, reference_discriminator_key, negate=negate)
    data = dict(G=nets['G'], D=D, G_ema=nets['G_ema'], augment_pipe=None, training_set_kwargs=None)
    for key in ('G', 'D', 'G_ema'):
        data[key] = data[key].eval().requires_grad_(False)
    return data, arch


def summary(arch, weights, version=None):
    p, o = arch['painter'], arch['origin']
    yes = lambda b: 'yes' if b else 'no'
    fpa = f"z_dim {arch['z_dim']}, hidden {p['hidden']}, layers {p['layers']}"
    if arch['version'] == 'v2':
        fpa += f", d_in {p['d_in']}, d'_in {p['d_in_proj']}, latent_to_init {yes(p['latent_to_init'])}"
    lines = [f"{arch['model_type']} (FPA {arch['version']}{' + U-Net' if arch['unet'] else ''}), "
             f"{arch['resolution']}x{arch['resolution']}, {arch['channels']} channels"
             + (f'; lightweight-gan {version}' if version else ''),
             f'  from the weights: {fpa}' + (f", U-Net widths {arch['unet_kwargs']['dim']} x "
                                            f"{arch['unet_kwargs']['dim_mults']}" if arch['unet'] else ''),
             f"  T = {p['steps']} steps ({o['steps']})",
             f"  out tanh {yes(p['out_tanh'])} ({o['out_tanh']}), softmax keys {yes(p['key_activation'] == 'softmax')} "
             f"({o['softmax']})" + (f", input tanh {yes(p['input_tanh'])} ({o['input_tanh']})"
                                    if 'input_tanh' in o else ''),
             f"  output range {p['output_range']}; G_ema <- {'GE (the EMA)' if weights == 'ema' else 'G (raw)'}, "
             f"G <- G; D with both heads negated"]
    return '\n'.join(lines)

#----------------------------------------------------------------------------
# The command line.

@click.command()
@click.option('--source', 'source', required=True, metavar='PATH',
              help="The authors' checkpoint (model_*.pt)")
@click.option('--dest', 'dest', required=True, metavar='PATH', help='Network pickle to write (.pkl)')
@click.option('--weights', type=click.Choice(['ema', 'raw']), default='ema', show_default=True,
              help="G_ema of the pickle (what gen_images.py and calc_metrics.py use): GE, the reference's EMA, "
                   "which its FIDs and samples use; or G")
@click.option('--flags-from', 'flags_from', metavar='FILE',
              help="The model's training script (or any text with main.py's flags): takes --out_tanh, "
                   "--v2_input_sigmoid, --use_softmax, --num_decoding_steps from it and checks the sizes it gives")
@click.option('--steps', type=click.IntRange(min=1), help='T: v1 models only (v2: read from the weights)  '
              '[default: 64, the paper\'s]')
@click.option('--out-tanh/--no-out-tanh', default=None, help='tanh on the image (--out_tanh)  [default: on]')
@click.option('--input-tanh/--no-input-tanh', default=None,
              help='v2: tanh on the input generator (--v2_input_sigmoid)  [default: off]')
@click.option('--softmax/--no-softmax', default=None, help='softmax keys (--use_softmax)  [default: on]')
@click.option('--output-range', type=click.Choice(['reference', 'symmetric']), default='reference',
              show_default=True, help="reference: 2 clamp(x, 0, 1) - 1, so that StyleGAN3's tools show the images "
              "the authors' code saves (clamped to [0, 1]); symmetric: the tanh output x itself")
def main(source, dest, weights, flags_from, output_range, **given):
    """Convert an FPA checkpoint of the authors' code (IDSIA/fpainter: model types lstm_delta,
    lstm_delta_split_v2 and their _unet versions) into a StyleGAN3 network pickle of this plugin's classes.

    \b
    fpa-convert --source=model_1.pt --dest=celeba.pkl --flags-from=celeba.sh
    fpa-convert --source=model_1.pt --dest=lsun.pkl --input-tanh
    fpa-convert --source=model_1.pt --dest=metfaces.pkl --steps=64      (v1)

    GE before 20k training steps is not an average: the reference copies G into GE every 1000 steps until then
    (and until 25k), so GE is G as it was up to 1000 steps earlier. FPA + U-Net: GE's FPA is the pre-trained
    FPA's raw G (GE <- G at step 2), only its U-Net is averaged.
    """
    flags = None
    if flags_from is not None:
        try:
            flags = reference_flags(Path(flags_from).read_text())
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise click.ClickException(f'--flags-from: cannot read {flags_from}: {err}') from None
    state, version = load_checkpoint(source)
    data, arch = convert(state, given, flags, weights, output_range)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=dest.parent, prefix=dest.name, suffix='.tmp', delete=False) as f:
        try:
            pickle.dump(data, f)
        except BaseException:
            os.unlink(f.name)
            raise
    os.replace(f.name, dest)                                            # no half-written pickle at dest
    click.echo(summary(arch, weights, version))
    click.echo(f'Wrote {dest}')


if __name__ == '__main__':
    main()
