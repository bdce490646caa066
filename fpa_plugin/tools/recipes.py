"""`fpa-recipe`: the paper's recipes, with paths filled in.

A recipe (`training_configs/recipes/<dataset>.json`, one per dataset of the paper) holds the dataset_tool.py command
that makes the 64x64 dataset, the train.py command of each model (stylegan2, lightgan, fpa, fpa-unet) with its
length and the paper's FIDs, and the calc_metrics.py command of the final evaluation. Commands run in the StyleGAN3
checkout (`fpa-stylegan3 where`) and hold placeholders in braces, `{data}`, which `fill` replaces.
`training_configs/recipes/README.md` explains every number and says which are the paper's.

    fpa-recipe                                                      the recipes and the FIDs they expect
    fpa-recipe celeba --raw=img_align_celeba.zip --data=celeba-64x64.zip --outdir=runs     the commands
"""

import json
import os
import re
import shlex
from importlib import resources

import click

PLACEHOLDERS = {                # name -> what it stands for
    'raw':      'the downloaded dataset (see the recipe\'s "raw")',
    'data':     'the 64x64 dataset zip that the preparation writes and every run reads',
    'outdir':   'the folder of the training runs',
    'fpa_pkl':  'fpa-unet: the best snapshot of the fpa run',
    'network':  'evaluate: the snapshot to evaluate (a run\'s best)',
}
DATASETS = ('celeba', 'metfaces', 'afhq-cat', 'afhq-dog', 'afhq-wild', 'lsun-church')    # Table 1's columns
MODELS = ('stylegan2', 'lightgan', 'fpa', 'fpa-unet')   # Table 1's rows; fpa before fpa-unet, which needs it
MONITOR = 'fid10k_full_jpeg'                            # the metric every run computes every 100 kimg
_FIELD = re.compile(r'\{(\w+)\}')

#----------------------------------------------------------------------------
# Reading and filling.

def _folder():
    return resources.files('fpa_plugin.training_configs') / 'recipes'


def list_recipes():
    """The recipes' names: the paper's datasets in Table 1's order, then any others."""
    names = {p.name[:-5] for p in _folder().iterdir() if p.name.endswith('.json')}
    return [n for n in DATASETS if n in names] + sorted(names - set(DATASETS))


def load_recipe(name):
    """The recipe's JSON as a dict."""
    path = _folder() / f'{name}.json'
    if not path.is_file():
        raise ValueError(f'Unknown recipe {name!r}: choose one of {", ".join(list_recipes())}')
    return json.loads(path.read_text())


def placeholders(text):
    """The placeholder names in a command, in order of first appearance."""
    return list(dict.fromkeys(_FIELD.findall(text)))


def fill(text, values):
    """`text` with each {name} whose value is given (not None) replaced by the shell-quoted value; the others stay."""
    unknown = sorted(set(placeholders(text)) - set(PLACEHOLDERS))
    if unknown:
        raise ValueError(f'Unknown placeholder(s) {", ".join(unknown)} in {text!r}')
    bad = sorted(set(values) - set(PLACEHOLDERS))
    if bad:
        raise ValueError(f'No placeholder called {", ".join(bad)}: choose from {", ".join(PLACEHOLDERS)}')

    def value(match):
        v = values.get(match.group(1))
        return match.group(0) if v is None else shlex.quote(str(v))
    return _FIELD.sub(value, text)


def commands(recipe, values, models=MODELS):
    """[(step, command)]: prepare, the models' train commands (in MODELS order), evaluate; filled with `values`."""
    steps = [('prepare', recipe['prepare'])]
    steps += [(m, recipe['runs'][m]['train']) for m in MODELS if m in models]
    steps += [('evaluate', recipe['evaluate'])]
    return [(step, fill(cmd, values)) for step, cmd in steps]


def script_args(command):
    """The arguments after `python <script>` of a filled command, as the script's own parser takes them."""
    words = shlex.split(command)
    if words[:1] != ['python'] or len(words) < 2:
        raise ValueError(f'Not a `python <script> ...` command: {command!r}')
    return words[2:]

#----------------------------------------------------------------------------
# Printing.

def _fid(value):
    return '-' if value is None else f'{value:.1f}'


def _run_comment(model, run):
    fid = run['expected_fid']
    lines = [f'{model}: {run["kimg"]} kimg = {run["steps"]:,} steps of batch {run["batch"]}. '
             f'Expected FID (50k, best snapshot): {_fid(fid["jpeg"])} JPEG, {_fid(fid["png"])} PNG.',
             f'Length: {run["length"]}.']
    paper = run['paper_fid']
    if (paper['table1_jpeg'], paper['table4_png']) != (fid['jpeg'], fid['png']):
        lines.append(f'Paper Table 1: {_fid(paper["table1_jpeg"])} JPEG; Table 4: {_fid(paper["table4_png"])} PNG; '
                     f'the recipe\'s notes (--json) say why this run expects otherwise.')
    return lines


def render(recipe, values, models=MODELS):
    """The recipe as a commented shell script."""
    out = [f'# {recipe["name"]} at {recipe["resolution"]}x{recipe["resolution"]} ({recipe["images"]:,} images).',
           f'# Source: {recipe["source"]}']
    missing = [name for name in PLACEHOLDERS if values.get(name) is None and any(
        name in placeholders(cmd) for _, cmd in commands(recipe, {}, models))]
    if missing:
        out.append('# Still to fill: ' + '; '.join(f'{{{n}}} = {PLACEHOLDERS[n]}' for n in missing) + '.')
    out += ['', '# Every command runs in the StyleGAN3 checkout.', 'cd "$(fpa-stylegan3 where)"', '']
    for step, cmd in commands(recipe, values, models):
        if step == 'prepare':
            out += [f'# Prepare the dataset ({{raw}}: {recipe["raw"]}).']
        elif step == 'evaluate':
            out += [f'# Each run\'s best snapshot is the one with the lowest {MONITOR}: `fpa-report '
                    f'{values.get("outdir") or "{outdir}"} --metric={MONITOR}` lists it (runs.csv, best_snapshot).',
                    '# Final evaluation of a best snapshot ({network}), the paper\'s protocol (50k images, '
                    'JPEG: Table 1; PNG: Table 4):']
        else:
            out += [f'# {line}' for line in _run_comment(step, recipe['runs'][step])]
        out += [cmd, '']
    return '\n'.join(out).rstrip() + '\n'


def summary():
    """One line per recipe: the expected FIDs (JPEG) of the four models and the FPA's length."""
    header = f'{"recipe":<12} {"images":>8}  ' + ' '.join(f'{m:>9}' for m in MODELS) + '   (expected FID, JPEG)'
    lines = [header]
    for name in list_recipes():
        r = load_recipe(name)
        fids = ' '.join(f'{_fid(r["runs"][m]["expected_fid"]["jpeg"]):>9}' for m in MODELS)
        lines.append(f'{name:<12} {r["images"]:>8,}  {fids}')
    return '\n'.join(lines) + '\n'

def _absolute(path):
    """An absolute path (URLs and None stay as they are): the commands run in the StyleGAN3 checkout."""
    return path if path is None or '://' in path else os.path.abspath(os.path.expanduser(path))

#----------------------------------------------------------------------------

@click.command()
@click.argument('dataset', required=False)
@click.option('--raw', help='The downloaded dataset', metavar='PATH')
@click.option('--data', help='The 64x64 dataset zip to write and train on', metavar='ZIP')
@click.option('--outdir', help='Folder of the training runs', metavar='DIR')
@click.option('--fpa-pkl', help='fpa-unet: the best snapshot of the fpa run', metavar='PKL')
@click.option('--network', help='The snapshot to evaluate', metavar='PKL')
@click.option('--model', 'models', help='Only these models (repeatable)  [default: all]', multiple=True,
              type=click.Choice(MODELS))
@click.option('--json', 'as_json', help='Print the recipe as JSON, commands filled', is_flag=True)
def main(dataset, raw, data, outdir, fpa_pkl, network, models, as_json):
    """The paper's recipe for DATASET (without one: the list): preparation, training of each model, evaluation,
    with the given paths filled in. Unfilled placeholders stay in braces."""
    if dataset is None:
        click.echo(summary(), nl=False)
        return
    try:
        recipe = load_recipe(dataset)
    except ValueError as err:
        raise click.ClickException(str(err)) from None
    values = {k: _absolute(v) for k, v in dict(raw=raw, data=data, outdir=outdir, fpa_pkl=fpa_pkl,
                                                  network=network).items()}    # the commands run elsewhere
    models = models or MODELS
    if as_json:
        recipe['prepare'] = fill(recipe['prepare'], values)
        recipe['evaluate'] = fill(recipe['evaluate'], values)
        recipe['runs'] = {m: dict(run, train=fill(run['train'], values)) for m, run in recipe['runs'].items()
                          if m in models}
        click.echo(json.dumps(recipe, indent=2))
        return
    click.echo(render(recipe, values, models), nl=False)


if __name__ == '__main__':
    main()
