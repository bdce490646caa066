"""The main job, shortened (1 kimg): every promised output appears in the one output folder."""

import subprocess
import sys

import PIL.Image


def test_quickstart_produces_every_output(stylegan3, tmp_path):
    out = tmp_path / 'quick'
    proc = subprocess.run([sys.executable, '-m', 'fpa_plugin.tools.quickstart', f'--outdir={out}', '--kimg=1',
                           '--seeds=0-1', '--batch=16'], capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in ['run/log.txt', 'run/stats.jsonl', 'run/network-snapshot-000001.pkl', 'samples.png',
                 'painting/steps.png', 'painting/paint-seed0000.gif', 'painting/keys-seed0001.png',
                 'report/report.md', 'report/runs.csv']:
        assert (out / name).is_file(), name
    assert PIL.Image.open(out / 'painting' / 'paint-seed0000.gif').n_frames == 32     # T = 32 steps at 32x32
    assert f'Everything is in {out}' in proc.stdout.replace('\n', ' ') or str(out) in proc.stdout
    again = subprocess.run([sys.executable, '-m', 'fpa_plugin.tools.quickstart', f'--outdir={out}'],
                           capture_output=True, text=True)
    assert again.returncode != 0 and 'already holds a quick start' in again.stderr
