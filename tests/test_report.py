"""`fpa-report` on synthetic run directories laid out as StyleGAN3 writes them (no StyleGAN3 needed)."""

import csv
import json
import math
import os
import subprocess
import sys
import time

import PIL.Image
import pytest

from fpa_plugin.tools import report as rp

FPA = 'fpa_plugin.stylegan3.networks.FPAGenerator'
UNET = 'fpa_plugin.stylegan3.networks.FPAUNetGenerator'
LIGHTGAN = 'fpa_plugin.stylegan3.networks.LightGANGenerator'
SG2 = 'training.networks_stylegan2.Generator'
SG3 = 'training.networks_stylegan3.Generator'
LATER = time.time() + 10 * 24 * 3600     # `now` long after the files were written: runs not finished are stopped

#----------------------------------------------------------------------------
# Synthetic run directories.

def summary(name, params):
    """A print_module_summary table as in log.txt."""
    return (f'{name}  Parameters  Buffers  Output shape  Datatype\n---  ---  ---  ---  ---\n'
            f'layer  {params}  -  [8, 3]  float32\n---  ---  ---  ---  ---\nTotal  {params}  16  -  -\n\n')


def stats_line(kimg, sec_per_kimg, peak_cpu=1.0, peak_gpu=0.0):
    names = {'Progress/kimg': kimg, 'Timing/sec_per_kimg': sec_per_kimg, 'Timing/sec_per_tick': 10.0,
             'Timing/maintenance_sec': 1.0, 'Resources/cpu_mem_gb': peak_cpu / 2,
             'Resources/peak_cpu_mem_gb': peak_cpu, 'Resources/peak_gpu_mem_gb': peak_gpu}
    return dict({k: dict(num=1, mean=v, std=0.0) for k, v in names.items()}, timestamp=1.0)


def metric_line(metric, kimg, results):
    return dict(results=results, metric=metric, total_time=1.0, total_time_str='1s', num_gpus=1,
                snapshot_pkl=f'network-snapshot-{kimg:06d}.pkl', timestamp=1.0)


def make_run(root, name, g_class=FPA, dataset='/data/celeba-64x64.zip', total_kimg=8, ticks=(), metrics=None,
             g_kwargs=None, params=(1000, 2000), log_tail='Exiting...\n'):
    """A run directory: `ticks` = [(kimg, sec/kimg, peak CPU GB, peak GPU GB)], `metrics` = {metric: [(kimg,
    {key: value})]}."""
    path = root / name
    path.mkdir(parents=True)
    options = dict(training_set_kwargs=dict(path=dataset, resolution=64), batch_size=32, total_kimg=total_kimg,
                   G_kwargs=dict(class_name=g_class, **(g_kwargs or {})))
    (path / 'training_options.json').write_text(json.dumps(options, indent=2))
    (path / 'stats.jsonl').write_text(''.join(json.dumps(stats_line(*t)) + '\n' for t in ticks))
    for metric, evals in (metrics or {}).items():
        lines = [json.dumps(metric_line(metric, kimg, results)) + '\n' for kimg, results in evals]
        (path / f'metric-{metric}.jsonl').write_text(''.join(lines))
    log = 'Constructing networks...\n\n' + ''.join(summary(n, p) for n, p in zip(['Generator', 'Disc'], params))
    (path / 'log.txt').write_text(log + log_tail)
    return path


def fid(name, evals):
    return {name: [(kimg, {name: value}) for kimg, value in evals]}


@pytest.fixture
def runs(tmp_path):
    """Two datasets, six configurations; two fpa celeba runs whose best values come from different runs."""
    root = tmp_path / 'runs'
    ticks = [(0, 300.0, 1.0), (4, 20.0, 2.0, 5.5), (8, 30.0, 1.5, 3.0)]
    make_run(root, '00000-fpa-celeba', ticks=ticks,
             metrics=fid('fid50k_full_jpeg', [(0, 300.0), (4, 50.5), (8, 60.0)]))
    make_run(root, '00001-fpa-celeba', ticks=ticks[:2], total_kimg=12, log_tail='Traceback (most recent call last)\n',
             metrics=fid('fid50k_full_jpeg', [(0, 280.0), (4, 45.25), (8, float('nan'))]))
    make_run(root, '00002-stylegan2-celeba', g_class=SG2, ticks=ticks,
             metrics=fid('fid50k_full_jpeg', [(0, 400.0), (4, 30.0), (8, 31.0)]))
    make_run(root, '00003-lightgan-metfaces', g_class=LIGHTGAN, dataset='/data/metfaces-256x256', ticks=ticks,
             metrics=fid('fid50k_full_jpeg', [(8, 70.0), (4, 69.0)]))
    make_run(root, '00004-fpa-celeba-hebbian', ticks=ticks, g_kwargs=dict(rule='hebbian', steps=64),
             metrics=fid('fid50k_full_jpeg', [(4, 90.0)]))
    make_run(root, '00005-stylegan3-r-celeba', g_class=SG3, g_kwargs=dict(conv_kernel=1), ticks=ticks,
             metrics=fid('fid50k_full_jpeg', [(4, 25.0)]))
    make_run(root, '00006-fpa-unet-metfaces', g_class=UNET, dataset='/data/metfaces-256x256', ticks=ticks[:1],
             total_kimg=100, log_tail='')                              # no metric yet
    return root

#----------------------------------------------------------------------------
# Parsing.

def test_snapshot_kimg_and_dataset_name():
    assert rp.snapshot_kimg('network-snapshot-000123.pkl') == 123
    assert rp.snapshot_kimg('runs/00001-x/network-snapshot-025000.pkl') == 25000
    assert rp.snapshot_kimg('network-final.pkl') is None and rp.snapshot_kimg(None) is None
    assert rp.dataset_name({'training_set_kwargs': {'path': '/d/celeba-64x64.zip'}}) == 'celeba-64x64'
    assert rp.dataset_name({'training_set_kwargs': {'path': '/d/metfaces/'}}) == 'metfaces'
    assert rp.dataset_name({}) == 'unknown'


@pytest.mark.parametrize('class_name,kwargs,label', [
    (FPA, {}, 'fpa'), (FPA, {'rule': 'delta'}, 'fpa'), (FPA, {'rule': 'oja'}, 'fpa (oja)'),
    (UNET, {'fpa_kwargs': {'rule': 'hebbian'}}, 'fpa-unet (hebbian)'), (LIGHTGAN, {}, 'lightgan'),
    (SG2, {}, 'stylegan2'), (SG3, {'conv_kernel': 3}, 'stylegan3-t'), (SG3, {'conv_kernel': 1}, 'stylegan3-r'),
    ('my.nets.Painter', {}, 'Painter')])
def test_config_label(class_name, kwargs, label):
    assert rp.config_label({'G_kwargs': dict(class_name=class_name, **kwargs)}) == label


def test_parse_jsonl_skips_and_names_broken_lines():
    text = '{"a": 1}\n\n[1, 2]\n{"b": NaN}\n{"c": 3, "d'
    records, warnings = rp.parse_jsonl(text, 'x.jsonl')
    assert [sorted(r) for r in records] == [['a'], ['b']]
    assert warnings == ['x.jsonl: line 2 is empty, ignored', 'x.jsonl: line 3 is not a JSON object, ignored',
                        'x.jsonl: last line is truncated, ignored']
    assert rp.parse_jsonl('', 'x') == ([], []) and rp.parse_jsonl('{"a": 1}\n', 'x') == ([{'a': 1}], [])


def test_direction():
    assert rp.lower_is_better('fid50k_full_jpeg') == (True, True)
    assert rp.lower_is_better('kid50k_full') == (True, True)
    assert rp.lower_is_better('is50k_mean') == (False, True)
    assert rp.lower_is_better('pr50k3_full_recall') == (False, True)
    assert rp.lower_is_better('mystery') == (True, False)

#----------------------------------------------------------------------------
# The report.

def test_table1_best_values(runs):
    report = rp.build_report([str(runs)], now=LATER)
    assert report.metric == 'fid50k_full_jpeg' and report.lower
    assert report.configs == ['stylegan2', 'stylegan3-r', 'lightgan', 'fpa', 'fpa (hebbian)', 'fpa-unet']
    assert report.datasets == ['celeba-64x64', 'metfaces-256x256']
    cells = {k: (b.value, b.kimg, b.snapshot, b.run) for k, b in report.cells.items()}
    assert cells == {
        ('fpa', 'celeba-64x64'): (45.25, 4, 'network-snapshot-000004.pkl', '00001-fpa-celeba'),   # the better run
        ('fpa (hebbian)', 'celeba-64x64'): (90.0, 4, 'network-snapshot-000004.pkl', '00004-fpa-celeba-hebbian'),
        ('stylegan2', 'celeba-64x64'): (30.0, 4, 'network-snapshot-000004.pkl', '00002-stylegan2-celeba'),
        ('stylegan3-r', 'celeba-64x64'): (25.0, 4, 'network-snapshot-000004.pkl', '00005-stylegan3-r-celeba'),
        ('lightgan', 'metfaces-256x256'): (69.0, 4, 'network-snapshot-000004.pkl', '00003-lightgan-metfaces'),
    }
    assert any('00001-fpa-celeba' in w and 'NaN' in w for w in report.warnings)


def test_higher_is_better_and_metric_names(tmp_path):
    make_run(tmp_path, 'a', metrics={'is50k': [(0, {'is50k_mean': 2.0, 'is50k_std': 0.1}),
                                               (4, {'is50k_mean': 5.0, 'is50k_std': 9.0}),
                                               (8, {'is50k_mean': 4.0, 'is50k_std': 0.1})],
                                     'pr50k3_full': [(4, {'pr50k3_full_precision': 0.5, 'pr50k3_full_recall': 0.2})]})
    report = rp.build_report([str(tmp_path / 'a')], metric='is50k', now=LATER)
    assert report.metric == 'is50k_mean' and not report.lower
    assert report.cells[('fpa', 'celeba-64x64')][:2] == (5.0, 4)
    with pytest.raises(rp.ReportError, match='pr50k3_full_precision, pr50k3_full_recall'):
        rp.build_report([str(tmp_path / 'a')], metric='pr50k3_full')


def test_default_metric(tmp_path):
    make_run(tmp_path, 'a', metrics={**fid('fid5k_full', [(0, 9.0)]), **fid('kid50k_full', [(0, 0.1)])})
    make_run(tmp_path, 'b', metrics=fid('fid5k_full', [(0, 8.0)]))
    assert rp.build_report([str(tmp_path)]).metric == 'fid5k_full'              # the most common
    make_run(tmp_path, 'c', metrics=fid('fid50k_full_jpeg', [(0, 7.0)]))
    assert rp.build_report([str(tmp_path)]).metric == 'fid50k_full_jpeg'        # the paper's, if any run has it


def test_per_run_table(runs):
    report = rp.build_report([str(runs)], now=LATER)
    rows = {r['run']: r for r in report.rows}
    r = rows['00000-fpa-celeba']
    assert (r['config'], r['dataset'], r['resolution'], r['batch']) == ('fpa', 'celeba-64x64', 64, 32)
    assert (r['G_params'], r['D_params'], r['kimg']) == (1000, 2000, 8)
    assert r['sec_per_kimg'] == 25.0                                            # tick 0 (300 s/kimg) left out
    assert (r['peak_cpu_mem_gb'], r['peak_gpu_mem_gb']) == (2.0, 5.5)
    assert (r['evaluations'], r['best'], r['best_kimg'], r['status']) == (3, 50.5, 4, 'finished')
    assert rows['00001-fpa-celeba']['evaluations'] == 2                         # the NaN one dropped
    assert rows['00001-fpa-celeba']['status'] == 'stopped (error)'
    unet = rows['00006-fpa-unet-metfaces']
    assert (unet['evaluations'], unet['best'], unet['sec_per_kimg'], unet['peak_gpu_mem_gb']) == (0, None, None, None)
    assert unet['status'] == 'stopped'
    assert rp.build_report([str(runs / '00006-fpa-unet-metfaces')]).rows[0]['status'] == 'in progress'


def test_written_files(runs, tmp_path):
    outdir = tmp_path / 'out'
    report = rp.build_report([str(runs)], now=LATER)
    written = rp.write_report(report, str(outdir))
    assert sorted(os.path.basename(p) for p in written) == ['fid50k_full_jpeg.png', 'report.md', 'runs.csv',
                                                            'table.csv']
    with open(outdir / 'table.csv', newline='') as f:
        table = {row['config']: row for row in csv.DictReader(f)}
    assert list(table) == report.configs
    assert float(table['fpa']['celeba-64x64']) == 45.25 and table['fpa']['celeba-64x64 kimg'] == '4'
    assert table['fpa']['celeba-64x64 snapshot'] == 'network-snapshot-000004.pkl'
    assert table['fpa']['celeba-64x64 run'] == '00001-fpa-celeba'
    assert table['fpa-unet']['metfaces-256x256'] == '' and table['fpa']['metfaces-256x256'] == ''
    with open(outdir / 'runs.csv', newline='') as f:
        rows = {row['run']: row for row in csv.DictReader(f)}
    assert len(rows) == 7
    assert float(rows['00002-stylegan2-celeba']['best_fid50k_full_jpeg']) == 30.0
    assert rows['00006-fpa-unet-metfaces']['best_fid50k_full_jpeg'] == ''
    md = (outdir / 'report.md').read_text()
    assert '| fpa | 45.25 (4 kimg) | – |' in md
    assert '![fid50k_full_jpeg against kimg](fid50k_full_jpeg.png)' in md
    with PIL.Image.open(outdir / 'fid50k_full_jpeg.png') as img:
        assert img.format == 'PNG' and img.size[0] > 100 and img.size[1] > 100


def test_plot_series_and_log_scale(runs):
    report = rp.build_report([str(runs)], now=LATER)
    series = {label: (k, v) for label, k, v in rp.plot_series(report)}
    assert series['lightgan metfaces-256x256 (00003-lightgan-metfaces)'] == ([4, 8], [69.0, 70.0])   # sorted by kimg
    assert series['fpa celeba-64x64 (00001-fpa-celeba)'] == ([0, 4], [280.0, 45.25])
    assert len(series) == 6                                                     # not the run without a metric
    assert rp.use_log_y(rp.plot_series(report))                                 # 400 / 25 > 10
    assert not rp.use_log_y([('a', [0, 1], [30.0, 200.0])])


def test_truncated_files_are_tolerated_and_reported(runs, tmp_path):
    run = runs / '00000-fpa-celeba'
    with open(run / 'metric-fid50k_full_jpeg.jsonl', 'a') as f:
        f.write(json.dumps(metric_line('fid50k_full_jpeg', 12, {'fid50k_full_jpeg': 1.0}))[:40])   # killed mid-write
    with open(run / 'stats.jsonl', 'a') as f:
        f.write('{"Progress/kimg": {"num": 1, "mea')
    opts = runs / '00002-stylegan2-celeba' / 'training_options.json'
    opts.write_text(opts.read_text()[:50])
    outdir = tmp_path / 'out'
    result = subprocess.run([sys.executable, '-m', 'fpa_plugin.tools.report', str(runs), '--outdir', str(outdir)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f'Wrote {outdir / "report.md"}' in result.stdout
    assert 'metric-fid50k_full_jpeg.jsonl: last line is truncated' in result.stderr
    md = (outdir / 'report.md').read_text()
    assert '00000-fpa-celeba: metric-fid50k_full_jpeg.jsonl: last line is truncated, ignored' in md
    assert '00000-fpa-celeba: stats.jsonl: last line is truncated, ignored' in md
    assert '00002-stylegan2-celeba: training_options.json is not valid JSON' in md
    with open(outdir / 'runs.csv', newline='') as f:
        rows = {row['run']: row for row in csv.DictReader(f)}
    assert (rows['00000-fpa-celeba']['best_fid50k_full_jpeg'], rows['00000-fpa-celeba']['kimg']) == ('50.5', '8.0')
    assert rows['00002-stylegan2-celeba']['config'] == 'unknown'
    assert math.isclose(float(rows['00002-stylegan2-celeba']['best_fid50k_full_jpeg']), 30.0)


def test_runs_and_folders(runs, tmp_path):
    (tmp_path / 'runs' / 'not-a-run').mkdir()
    (tmp_path / 'runs' / 'half-run').mkdir()
    (tmp_path / 'runs' / 'half-run' / 'stats.jsonl').write_text('')
    found, warnings = rp.find_runs([str(runs), str(runs / '00000-fpa-celeba')])     # a run twice: once
    expected = sorted(p.parent.name for p in runs.glob('*/training_options.json'))
    assert len(expected) == 7 and [os.path.basename(p) for p in found] == expected
    assert len(warnings) == 1 and 'half-run' in warnings[0]
    other = make_run(tmp_path / 'elsewhere', '00000-fpa-celeba')
    names = [r.name for r in rp.build_report([str(runs), str(other)]).runs]
    assert 'runs/00000-fpa-celeba' in names and 'elsewhere/00000-fpa-celeba' in names


def bad_path(tmp_path, kind):
    if kind == 'file':
        (tmp_path / 'file.txt').write_text('x')
    elif kind == 'empty':
        (tmp_path / 'empty').mkdir()
    return tmp_path / {'missing': 'missing', 'file': 'file.txt', 'empty': 'empty'}[kind]


@pytest.mark.parametrize('kind,message', [('missing', 'no such file or directory'), ('file', 'not a directory'),
                                          ('empty', 'not a run directory (no training_options.json)')])
def test_bad_paths_fail_clearly(tmp_path, kind, message):
    path = bad_path(tmp_path, kind)
    result = subprocess.run([sys.executable, '-m', 'fpa_plugin.tools.report', str(path), '--outdir',
                             str(tmp_path / 'out')], capture_output=True, text=True)
    assert result.returncode != 0
    assert f'Error: {path}: {message}' in result.stderr
    assert 'Traceback' not in result.stderr
    assert not (tmp_path / 'out').exists()
