#!/usr/bin/env bash
# One short stint on a GPU, prepared so that it fits in ~8 minutes (issue: performance): generation images/s at
# batch 1/20/64 (parallel and naive painter, bare LSTM, bf16, torch.compile with CUDA graphs, StyleGAN2's G), then
# StyleGAN3's training loop, sec/kimg and peak GPU memory, for fpa (CelebA preset, paper D), fpa with bf16 autocast
# (--fpa-amp=bfloat16) and stylegan2.
#
#     FPA_STYLEGAN3_SOURCE=/path/to/stylegan3 bash benchmarks/gpu.sh [OUTDIR]
#
# Run from the repository root with a CUDA build of torch. Nothing is downloaded: the packages the plugin needs
# (click, numpy, pillow, scipy, ninja, psutil) must be there already, StyleGAN3 comes from FPA_STYLEGAN3_SOURCE
# (a git repository or a plain copy), and the data is 512 random 64x64 images written here (speed does not
# depend on what the images show), unless DATA names a dataset zip. Optional: FPAINTER_CODE=<IDSIA/fpainter>/code
# adds the authors' generator to the generation table. Each step has its own time limit, so one that hangs
# cannot eat the others' time; the tables land in OUTDIR (default gpu-bench) and on stdout.
set -uo pipefail
out=${1:-gpu-bench}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "benchmarks/gpu.sh: no CUDA device")' || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"

python3 -m pip install -q --no-deps --no-build-isolation -e . || exit 1
fpa-stylegan3 install ${FPA_STYLEGAN3_SOURCE:+--source "$FPA_STYLEGAN3_SOURCE"} || exit 1

data=${DATA:-$out/random-64x64.zip}
if [ ! -f "$data" ]; then
    python3 - "$data" <<'EOF' || exit 1
import io, json, sys, zipfile
import numpy as np, PIL.Image
rng = np.random.default_rng(0)
with zipfile.ZipFile(sys.argv[1], 'w') as z:
    for i in range(512):
        png = io.BytesIO()
        PIL.Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(png, format='png')
        z.writestr(f'{i:05d}.png', png.getvalue())
    z.writestr('dataset.json', json.dumps({'labels': None}))
EOF
fi

ref=${FPAINTER_CODE:+--reference-code=$FPAINTER_CODE}
echo "== generation (images/s)" | tee "$out/generator.txt"
timeout 180 python3 -m benchmarks.generator --device=cuda --batches=1,20,64 --repeats=10 --compile $ref \
    2>&1 | tee -a "$out/generator.txt"
echo "== training (StyleGAN3 loop, batch 20)" | tee "$out/training.txt"
timeout 300 python3 -m benchmarks.training --data="$data" --batch=20 --steps=24 --cfgs=fpa,fpa-bf16,stylegan2 \
    2>&1 | tee -a "$out/training.txt"
