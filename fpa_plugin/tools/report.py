"""`fpa-report`: the paper's Table 1 (best metric per configuration and dataset), a per-run table and a plot of
the metric against kimg, from StyleGAN3 run directories of any configuration (stylegan2, stylegan3-t/-r, fpa,
fpa-unet, lightgan).

What a run directory holds (StyleGAN3's train.py and training_loop.py, metric_main.report_metric):
    training_options.json   the run's options: G_kwargs.class_name, training_set_kwargs.path, total_kimg, ...
    stats.jsonl             one line per tick: {name: {"num", "mean", "std"}, ..., "timestamp"}
    metric-<name>.jsonl     one line per evaluation: {"results": {key: value}, "snapshot_pkl", ...}
    log.txt                 stdout and stderr, with the G then D summary tables (a `Total  <params>  <buffers>` row)

Reading is forgiving: broken lines (a run killed mid-write), NaN values, missing files and runs still in progress
are skipped or marked and reported as warnings, never a crash. Only bad arguments are errors.
"""

import collections
import csv
import dataclasses
import json
import math
import os
import re
import time

import click

#----------------------------------------------------------------------------
# Names.

DEFAULT_METRIC = 'fid50k_full_jpeg'     # the paper's Table 1 protocol
G_CLASSES = {                           # G_kwargs.class_name -> configuration
    'training.networks_stylegan2.Generator':          'stylegan2',
    'training.networks_stylegan3.Generator':          'stylegan3-t',     # -r when conv_kernel == 1
    'fpa_plugin.stylegan3.networks.LightGANGenerator': 'lightgan',
    'fpa_plugin.stylegan3.networks.FPAGenerator':      'fpa',
    'fpa_plugin.stylegan3.networks.FPAUNetGenerator':  'fpa-unet',
}
CONFIG_ORDER = ['stylegan2', 'stylegan3-t', 'stylegan3-r', 'lightgan', 'fpa', 'fpa-unet']   # the paper's rows first
LOWER_IS_BETTER = re.compile(r'^(fid|kid|ppl)')     # distances
HIGHER_IS_BETTER = re.compile(r'^(is|pr|eq)')       # inception score, precision/recall, equivariance PSNR
SNAPSHOT = re.compile(r'network-snapshot-(\d+)\.pkl$')
STALE_S = 3600                          # a run whose files are older than this (and 3 ticks) is no longer running


class ReportError(Exception):
    pass


Eval = collections.namedtuple('Eval', 'kimg value snapshot')            # one evaluation of one metric
Best = collections.namedtuple('Best', 'value kimg snapshot run')


@dataclasses.dataclass
class Run:
    path: str
    name: str                           # the directory's name, with its parent's where names collide
    options: dict
    stats: list                         # stats.jsonl lines (dicts)
    evals: dict                         # result key -> [Eval] in file order, finite values only
    log_text: str
    age_s: float = None                 # seconds since any of its files last changed
    warnings: list = dataclasses.field(default_factory=list)

#----------------------------------------------------------------------------
# Parsing (pure functions).

def parse_jsonl(text, name):
    """The dict lines of a .jsonl text -> (records, warnings). Broken or empty lines are skipped and named."""
    lines = text.split('\n')
    if lines and lines[-1] == '':
        lines.pop()                                                     # the normal final newline
    records, warnings = [], []
    for i, line in enumerate(lines, 1):
        where = 'last line' if i == len(lines) else f'line {i}'
        if not line.strip(' \t\r\x00'):
            warnings.append(f'{name}: {where} is empty, ignored')
            continue
        try:
            record = json.loads(line)
        except ValueError:
            what = 'truncated' if i == len(lines) and not text.endswith('\n') else 'not valid JSON'
            warnings.append(f'{name}: {where} is {what}, ignored')
            continue
        if not isinstance(record, dict):
            warnings.append(f'{name}: {where} is not a JSON object, ignored')
            continue
        records.append(record)
    return records, warnings


def parse_options(text, name='training_options.json'):
    """training_options.json text -> (options dict, warnings)."""
    try:
        options = json.loads(text)
    except ValueError:
        return {}, [f'{name} is not valid JSON (truncated?): configuration and dataset unknown']
    if not isinstance(options, dict):
        return {}, [f'{name} is not a JSON object: configuration and dataset unknown']
    return options, []


def parse_params(log_text):
    """log.txt -> (G params, D params) from the `Total` rows of print_module_summary; None where absent."""
    totals = [int(m.group(1)) for m in re.finditer(r'^Total\s+(\d+)\s+(\d+)\s', log_text, re.MULTILINE)]
    return (totals + [None, None])[0], (totals + [None, None])[1]


def snapshot_kimg(snapshot_pkl):
    """'network-snapshot-000123.pkl' (or a path ending in it) -> 123; None if it is not a snapshot name."""
    m = SNAPSHOT.search(snapshot_pkl or '')
    return int(m.group(1)) if m else None


def parse_evals(records, name):
    """metric-<name>.jsonl records -> ({result key: [Eval]}, warnings). Non-finite values are dropped."""
    evals, warnings = collections.defaultdict(list), []
    dropped = collections.Counter()
    for record in records:
        results = record.get('results')
        if not isinstance(results, dict):
            warnings.append(f'{name}: an evaluation without "results", ignored')
            continue
        snapshot = record.get('snapshot_pkl') if isinstance(record.get('snapshot_pkl'), str) else None
        for key, value in results.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                dropped[key] += 1
                continue
            evals[key].append(Eval(snapshot_kimg(snapshot), float(value), snapshot))
    for key, n in sorted(dropped.items()):
        warnings.append(f'{name}: {n} {key} value(s) NaN or not a number, ignored')
    return dict(evals), warnings


def config_label(options):
    """The row label: the configuration from G's class, with the learning rule of fpa runs if it is not delta."""
    g_kwargs = options.get('G_kwargs') if isinstance(options.get('G_kwargs'), dict) else {}
    class_name = g_kwargs.get('class_name')
    if not isinstance(class_name, str):
        return 'unknown'
    config = G_CLASSES.get(class_name, class_name.split('.')[-1])
    if config == 'stylegan3-t' and g_kwargs.get('conv_kernel') == 1:
        config = 'stylegan3-r'
    rule = _find_key(g_kwargs, 'rule')
    if config.startswith('fpa') and isinstance(rule, str) and rule != 'delta':
        config += f' ({rule})'
    return config


def _find_key(d, key):
    """d[key], else the first nested dict's (the U-Net wrapper may keep FPA's options one level down)."""
    if key in d:
        return d[key]
    for value in d.values():
        if isinstance(value, dict) and key in value:
            return value[key]
    return None


def dataset_name(options):
    """Basename of training_set_kwargs.path without extension, e.g. 'celeba-64x64'."""
    kwargs = options.get('training_set_kwargs') if isinstance(options.get('training_set_kwargs'), dict) else {}
    path = kwargs.get('path')
    if not isinstance(path, str) or not path.strip('/'):
        return 'unknown'
    return os.path.splitext(os.path.basename(path.rstrip('/')))[0]


def config_sort_key(label):
    base = label.split(' (')[0]
    return (CONFIG_ORDER.index(base) if base in CONFIG_ORDER else len(CONFIG_ORDER), label)


def lower_is_better(metric):
    """(lower is better, known): fid/kid/ppl lower, is/pr/eq higher; an unknown metric is taken as a distance."""
    if LOWER_IS_BETTER.match(metric):
        return True, True
    if HIGHER_IS_BETTER.match(metric):
        return False, True
    return True, False


def best_eval(evals, lower):
    """The best Eval (the earliest of equals), or None."""
    best = None
    for e in evals:
        if best is None or (e.value < best.value if lower else e.value > best.value):
            best = e
    return best

#----------------------------------------------------------------------------
# Per-run figures from stats.jsonl (pure functions).

def _stat(line, name):
    """The mean of `name` in one stats.jsonl line, if it is a finite number."""
    entry = line.get(name)
    value = entry.get('mean') if isinstance(entry, dict) else None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def _stat_values(stats, name):
    return [v for v in (_stat(line, name) for line in stats) if v is not None]


def kimg_reached(stats):
    values = _stat_values(stats, 'Progress/kimg')
    return values[-1] if values else None


def sec_per_kimg(stats):
    """Mean over the ticks after the first (tick 0 includes start-up); None with fewer than two ticks."""
    values = _stat_values(stats[1:], 'Timing/sec_per_kimg')
    return sum(values) / len(values) if values else None


def peak_mem_gb(stats):
    """(peak CPU GB, peak GPU GB); GPU None when 0 (a CPU run). CPU falls back to the per-tick RSS without the
    plugin's Resources/peak_cpu_mem_gb."""
    cpu = _stat_values(stats, 'Resources/peak_cpu_mem_gb') or _stat_values(stats, 'Resources/cpu_mem_gb')
    gpu = _stat_values(stats, 'Resources/peak_gpu_mem_gb')
    return (max(cpu) if cpu else None), (max(gpu) if gpu and max(gpu) > 0 else None)


def run_status(kimg, total_kimg, log_text, age_s, stats):
    """'finished' (kimg >= total_kimg), 'in progress' (files changed recently), else 'stopped' or 'stopped (error)'."""
    if kimg is not None and isinstance(total_kimg, (int, float)) and kimg >= total_kimg - 1e-6 * max(1, total_kimg):
        return 'finished'
    if 'Traceback (most recent call last)' in log_text:
        return 'stopped (error)'
    if log_text.rstrip().endswith('Exiting...'):
        return 'stopped'
    tick_s = [a + b for a, b in zip(_stat_values(stats, 'Timing/sec_per_tick'),
                                    _stat_values(stats, 'Timing/maintenance_sec'))]
    if age_s is not None and age_s < max([STALE_S] + [3 * t for t in tick_s]):
        return 'in progress'
    return 'stopped'

#----------------------------------------------------------------------------
# Reading run directories.

def _read_text(path):
    with open(path, encoding='utf-8', errors='replace') as f:
        return f.read()


def is_run(path):
    return os.path.isfile(os.path.join(path, 'training_options.json'))


def find_runs(paths):
    """Arguments -> (run directories, warnings). A run directory holds training_options.json; any other folder
    stands for its immediate subfolders that are runs. Raises ReportError for a bad path."""
    runs, warnings = [], []
    for path in paths:
        if not os.path.exists(path):
            raise ReportError(f'{path}: no such file or directory')
        if not os.path.isdir(path):
            raise ReportError(f'{path}: not a directory (give run directories or folders holding them)')
        if is_run(path):
            runs.append(path)
            continue
        try:
            subdirs = sorted(e.path for e in os.scandir(path) if e.is_dir())
        except OSError as err:
            raise ReportError(f'{path}: cannot list it ({err.strerror})') from err
        found = [d for d in subdirs if is_run(d)]
        for d in subdirs:
            if not is_run(d) and os.path.exists(os.path.join(d, 'stats.jsonl')):
                warnings.append(f'{d}: stats.jsonl but no training_options.json, not read as a run')
        if not found:
            raise ReportError(f'{path}: not a run directory (no training_options.json) and holds none')
        runs += found
    unique = list(dict.fromkeys(os.path.realpath(r) for r in runs))
    return unique, warnings


def load_run(path, name=None, now=None):
    """Read one run directory; what is missing or broken becomes a warning in run.warnings."""
    name = name or os.path.basename(path)
    warnings, mtimes = [], []

    def read(filename):
        p = os.path.join(path, filename)
        try:
            mtimes.append(os.path.getmtime(p))
            return _read_text(p)
        except OSError:
            return None

    options, w = parse_options(read('training_options.json') or '')
    warnings += w
    stats_text = read('stats.jsonl')
    if stats_text is None:
        warnings.append('no stats.jsonl (no tick yet?)')
    stats, w = parse_jsonl(stats_text or '', 'stats.jsonl')
    warnings += w
    evals = {}
    try:
        names = os.listdir(path)
    except OSError as err:
        names = []
        warnings.append(f'cannot list the directory ({err.strerror})')
    for filename in sorted(f for f in names if f.startswith('metric-') and f.endswith('.jsonl')):
        records, w = parse_jsonl(read(filename) or '', filename)
        warnings += w
        found, w = parse_evals(records, filename)
        warnings += w
        for key, values in found.items():
            evals.setdefault(key, []).extend(values)
    log_text = read('log.txt') or ''
    now = time.time() if now is None else now
    age_s = max(0.0, now - max(mtimes)) if mtimes else None
    return Run(path=path, name=name, options=options, stats=stats, evals=evals, log_text=log_text, age_s=age_s,
               warnings=[f'{name}: {w}' for w in warnings])


def display_names(paths):
    """The directory names, with the parent's name where two runs share one (00000-... in two folders)."""
    counts = collections.Counter(os.path.basename(p) for p in paths)
    return [os.path.basename(p) if counts[os.path.basename(p)] == 1 else
            os.path.join(os.path.basename(os.path.dirname(p)), os.path.basename(p)) for p in paths]

#----------------------------------------------------------------------------
# The report.

def choose_metric(runs, requested=None):
    """The result key to report -> (metric or None, warnings). Default: fid50k_full_jpeg if any run has it, else
    the one most runs have. A metric with several results is resolved when clear (is50k -> is50k_mean)."""
    counts = collections.Counter(key for run in runs for key in run.evals)
    if requested is None:
        if not counts:
            return None, ['no run has a metric yet: no best values and no plot']
        if DEFAULT_METRIC in counts:
            return DEFAULT_METRIC, []
        n_evals = collections.Counter()
        for run in runs:
            n_evals.update({key: len(evals) for key, evals in run.evals.items()})
        # Ties: the paper's JPEG protocol, then the most evaluations, then the first name.
        return max(sorted(counts), key=lambda k: (counts[k], k.endswith('_jpeg'), n_evals[k])), []
    if requested in counts:
        return requested, []
    candidates = sorted(k for k in counts if k.startswith(requested + '_'))
    if requested + '_mean' in candidates:
        return requested + '_mean', []
    if len(candidates) == 1:
        return candidates[0], []
    if candidates:
        raise ReportError(f'--metric {requested} has several results: {", ".join(candidates)}; choose one')
    found = f'found: {", ".join(sorted(counts))}' if counts else 'no run has any metric yet'
    return requested, [f'no run has {requested} yet ({found})']


@dataclasses.dataclass
class Report:
    runs: list
    metric: str
    lower: bool
    rows: list                          # per-run table: one dict per run
    configs: list                       # Table 1 rows
    datasets: list                      # Table 1 columns
    cells: dict                         # (config, dataset) -> Best
    warnings: list


def run_row(run, metric, lower):
    """One line of the per-run table."""
    g_params, d_params = parse_params(run.log_text)
    kimg = kimg_reached(run.stats)
    cpu_gb, gpu_gb = peak_mem_gb(run.stats)
    tsk = run.options.get('training_set_kwargs') if isinstance(run.options.get('training_set_kwargs'), dict) else {}
    evals = run.evals.get(metric, [])
    best = best_eval(evals, lower)
    return dict(
        run=run.name, config=config_label(run.options), dataset=dataset_name(run.options),
        resolution=tsk.get('resolution'), batch=run.options.get('batch_size'),
        G_params=g_params, D_params=d_params,
        kimg=kimg, total_kimg=run.options.get('total_kimg'), sec_per_kimg=sec_per_kimg(run.stats),
        peak_cpu_mem_gb=cpu_gb, peak_gpu_mem_gb=gpu_gb,
        evaluations=len(evals), best=best.value if best else None, best_kimg=best.kimg if best else None,
        best_snapshot=best.snapshot if best else None, metrics=' '.join(sorted(run.evals)),
        status=run_status(kimg, run.options.get('total_kimg'), run.log_text, run.age_s, run.stats),
        path=run.path)


def build_report(paths, metric=None, now=None):
    """Arguments -> Report. Raises ReportError for bad paths or an ambiguous --metric."""
    run_dirs, warnings = find_runs(paths)
    runs = [load_run(p, name, now) for p, name in zip(run_dirs, display_names(run_dirs))]
    for run in runs:
        warnings += run.warnings
    metric, w = choose_metric(runs, metric)
    warnings += w
    lower, known = lower_is_better(metric or '')
    if metric and not known:
        warnings.append(f'{metric}: direction unknown, taking lower as better')
    for run in runs:
        missing = [e for e in run.evals.get(metric, []) if e.kimg is None]
        if missing:
            warnings.append(f'{run.name}: {len(missing)} {metric} evaluation(s) without a snapshot name: no kimg')
    rows = sorted((run_row(run, metric, lower) for run in runs),
                  key=lambda r: (config_sort_key(r['config']), r['dataset'], r['run']))
    cells = {}
    for row in rows:
        if row['best'] is None:
            continue
        key = (row['config'], row['dataset'])
        if key not in cells or (row['best'] < cells[key].value if lower else row['best'] > cells[key].value):
            cells[key] = Best(row['best'], row['best_kimg'], row['best_snapshot'], row['run'])
    configs = sorted({r['config'] for r in rows}, key=config_sort_key)
    datasets = sorted({r['dataset'] for r in rows})
    return Report(runs=runs, metric=metric, lower=lower, rows=rows, configs=configs, datasets=datasets,
                  cells=cells, warnings=warnings)

#----------------------------------------------------------------------------
# Writing.

RUN_COLUMNS = [                         # (runs.csv column, report.md header)
    ('run', 'run'), ('config', 'config'), ('dataset', 'dataset'), ('resolution', 'res'), ('batch', 'batch'),
    ('G_params', 'G params'), ('D_params', 'D params'), ('kimg', 'kimg'), ('total_kimg', 'of kimg'),
    ('sec_per_kimg', 'sec/kimg'), ('peak_cpu_mem_gb', 'peak CPU GB'), ('peak_gpu_mem_gb', 'peak GPU GB'),
    ('evaluations', 'evals'), ('best', 'best'), ('best_kimg', 'best at kimg'), ('status', 'status'),
]
CSV_EXTRA = ['best_snapshot', 'metrics', 'path']


def fmt_value(v):
    """A metric value as in the paper (2 decimals), small ones (KID, precision) with 4 significant digits."""
    if v is None:
        return ''
    return f'{v:.2f}' if abs(v) >= 1 else f'{v:.4g}'


def _fmt_cell(key, v):
    if v is None:
        return ''
    if key == 'best':
        return fmt_value(v)
    if key in ('kimg', 'sec_per_kimg', 'peak_cpu_mem_gb', 'peak_gpu_mem_gb') and isinstance(v, float):
        return f'{v:.1f}' if key == 'kimg' else f'{v:.2f}'
    return str(v)


def _md_row(cells):
    return '| ' + ' | '.join(str(c).replace('|', '\\|') for c in cells) + ' |'


def _md_best(best):
    return f'{fmt_value(best.value)} ({best.kimg} kimg)' if best else '–'


def _md_table(header, rows):
    return [_md_row(header), _md_row(['---'] * len(header))] + [_md_row(r) for r in rows]


def table_csv_rows(report):
    """table.csv: Table 1's layout, with each dataset's kimg, snapshot and run beside its value."""
    header = ['config']
    for ds in report.datasets:
        header += [ds, f'{ds} kimg', f'{ds} snapshot', f'{ds} run']
    rows = [header]
    for config in report.configs:
        row = [config]
        for ds in report.datasets:
            best = report.cells.get((config, ds))
            row += [repr(best.value), best.kimg, best.snapshot, best.run] if best else ['', '', '', '']
        rows.append(['' if c is None else c for c in row])
    return rows


def runs_csv_rows(report):
    keys = [k for k, _ in RUN_COLUMNS] + CSV_EXTRA
    header = [f'best_{report.metric}' if k == 'best' and report.metric else k for k in keys]
    return [header] + [['' if row[k] is None else row[k] for k in keys] for row in report.rows]


def markdown(report, plot_name=None):
    m = report.metric
    lines = [f'# Metric report: {m or "no metric"}', '']
    if m:
        lines += [f'{len(report.runs)} run(s); best {m} per configuration and dataset '
                  f'({"lower" if report.lower else "higher"} is better).', '']
    lines += ['## Table 1', '']
    table = [[c] + [_md_best(report.cells.get((c, ds))) for ds in report.datasets] for c in report.configs]
    lines += _md_table(['model'] + report.datasets, table) + ['']
    if report.cells:
        lines += ['Where each best value was reached:', '']
        for (config, ds), b in sorted(report.cells.items(), key=lambda kv: (config_sort_key(kv[0][0]), kv[0][1])):
            lines.append(f'- {config}, {ds}: {fmt_value(b.value)} at `{b.snapshot}` ({b.kimg} kimg), run `{b.run}`')
        lines.append('')
    lines += ['## Runs', '']
    header = [f'best {m}' if k == 'best' and m else h for k, h in RUN_COLUMNS]
    lines += _md_table(header, [[_fmt_cell(k, row[k]) for k, _ in RUN_COLUMNS] for row in report.rows]) + ['']
    if plot_name:
        lines += ['## Plot', '', f'![{m} against kimg]({plot_name})', '']
    lines += ['## Warnings', '']
    lines += [f'- {w}' for w in report.warnings] or ['None.']
    return '\n'.join(lines) + '\n'


def plot_series(report):
    """[(legend label, [kimg], [value])] for the runs with evaluations of the metric at known kimg. Several
    evaluations of one snapshot: the last."""
    series = []
    rows = {row['path']: row for row in report.rows}
    for run in sorted(report.runs, key=lambda r: (config_sort_key(rows[r.path]['config']), r.name)):
        points = {e.kimg: e.value for e in run.evals.get(report.metric, []) if e.kimg is not None}
        if points:
            row = rows[run.path]
            kimgs = sorted(points)
            series.append((f'{row["config"]} {row["dataset"]} ({run.name})', kimgs, [points[k] for k in kimgs]))
    return series


def use_log_y(series):
    values = [v for _, _, vs in series for v in vs]
    return bool(values) and min(values) > 0 and max(values) > 10 * min(values)


def write_plot(report, path):
    """The metric against kimg, one line per run (matplotlib, Agg). False if there is nothing to plot."""
    series = plot_series(report)
    if not series:
        return False
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter
    fig = Figure(figsize=(8, 5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for i, (label, kimgs, values) in enumerate(series):
        style = ['-', '--', ':', '-.'][i // 10 % 4]                      # the colour cycle repeats after 10
        ax.plot(kimgs, values, style, marker='o', markersize=3, label=label)
    if use_log_y(series):
        ax.set_yscale('log')
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f'{v:g}'))                  # 100, not 10^2
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _pos: f'{v:g}' if f'{v:e}'[0] in '235' else ''))
    ax.set_xlabel('kimg')
    ax.set_ylabel(report.metric)
    ax.set_title(f'{report.metric} ({"lower" if report.lower else "higher"} is better)')
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize='small', loc='upper left', bbox_to_anchor=(1.01, 1))
    fig.savefig(path, dpi=100, bbox_inches='tight')
    return True


def _write_csv(path, rows):
    with open(path, 'w', newline='') as f:
        csv.writer(f).writerows(rows)


def write_report(report, outdir):
    """Write report.md, table.csv, runs.csv and <metric>.png into outdir; return the paths written."""
    os.makedirs(outdir, exist_ok=True)
    written = []
    plot_name = None
    if report.metric:
        plot_name = f'{re.sub(r"[^A-Za-z0-9_.-]", "_", report.metric)}.png'
        if write_plot(report, os.path.join(outdir, plot_name)):
            written.append(os.path.join(outdir, plot_name))
        else:
            if any(report.metric in run.evals for run in report.runs):
                report.warnings.append(f'no {report.metric} values at a known kimg: no plot')
            plot_name = None
    for name, rows in [('table.csv', table_csv_rows(report)), ('runs.csv', runs_csv_rows(report))]:
        _write_csv(os.path.join(outdir, name), rows)
        written.append(os.path.join(outdir, name))
    with open(os.path.join(outdir, 'report.md'), 'w') as f:
        f.write(markdown(report, plot_name))
    return [os.path.join(outdir, 'report.md')] + written

#----------------------------------------------------------------------------

@click.command()
@click.argument('paths', nargs=-1, required=True, type=click.Path())
@click.option('--metric', help=f'Result key to report, e.g. fid50k_full_jpeg, kid50k_full, is50k  [default: '
              f'{DEFAULT_METRIC} if any run has it, else the most common]')
@click.option('--outdir', default='.', show_default=True, type=click.Path(file_okay=False),
              help='Where to write report.md, table.csv, runs.csv and <metric>.png')
def main(paths, metric, outdir):
    """Table 1 (best metric per configuration and dataset), a per-run table and a plot, from StyleGAN3 run
    directories (PATHS: run directories, or folders holding them)."""
    try:
        report = build_report(paths, metric)
        written = write_report(report, outdir)
    except ReportError as err:
        raise click.ClickException(str(err)) from err
    except OSError as err:
        raise click.ClickException(f'{err.filename or outdir}: {err.strerror}') from err
    for w in report.warnings:
        click.echo(f'Warning: {w}', err=True)
    click.echo(f'{len(report.runs)} run(s), metric: {report.metric or "none"}')
    for path in written:
        click.echo(f'Wrote {path}')


if __name__ == '__main__':
    main()
