"""Build the default datasets (emoji-32x32.zip, emoji-64x64.zip) from the npm package emoji-datasource-google.

    python -m fpa_plugin.training_configs.datasets.build_emoji                      # fetches it with `npm pack`
    python -m fpa_plugin.training_configs.datasets.build_emoji --source=emoji-datasource-google-16.0.0.tgz

The package's 64x64 PNGs are Google's Noto Emoji images (Apache-2.0; see NOTICE.md). Kept: the faces of
Smileys & Emotion, the head-and-shoulders people of People & Body, the animals of Animals & Nature, each in its
default (yellow) skin tone. Each is composited on white; the 32x32 set is a Lanczos downsample of the 64x64 one.

Same source bytes -> same zip bytes: images in a fixed order, PNGs written here (8-bit RGB, no metadata, fixed
filters, zlib level 9), stored zip members with a fixed date and attributes, canonical JSON. The pixels depend
only on the source and Pillow's Lanczos filter; the PNG bytes also on the zlib library (BUILT_WITH_ZLIB).
"""

import hashlib
import io
import json
import os
import shutil
import struct
import subprocess
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path

import click
import numpy as np
import PIL.Image

from fpa_plugin.training_configs.datasets import CLASS_NAMES, RESOLUTIONS, zip_name

SOURCE_SPEC     = 'emoji-datasource-google@16.0.0'                     # npm package the committed zips come from
SOURCE_SHA256   = 'fb5fd131b362aab7a55542d2a147a79708cce0a8b1c1bbacd470172708b5c438'
SOURCE_URL      = 'https://registry.npmjs.org/emoji-datasource-google/-/emoji-datasource-google-16.0.0.tgz'
SOURCE_SIZE     = 64                                                    # pixels; the package's img/google/64
BUILT_WITH_ZLIB = '1.2.13'                                              # zlib.ZLIB_RUNTIME_VERSION of that build

# Kept subcategories besides Smileys' face-* and Animals' animal-*. People: the head-and-shoulders portraits, not
# the thin full-body figures of person-activity/-sport/-resting, the grey family pictograms, hands or body parts.
FACE_EXTRA = ('cat-face', 'monkey-face')
PEOPLE     = ('person', 'person-gesture', 'person-role', 'person-fantasy')
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)                                   # the earliest a zip can hold

#----------------------------------------------------------------------------

def label_of(entry):
    """Class label of one emoji.json entry (0 = face, 1 = person, 2 = animal), or None to leave it out."""
    if not entry.get('has_img_google'):
        return None
    category, sub = entry['category'], entry['subcategory']
    if category == 'Smileys & Emotion' and (sub.startswith('face-') or sub in FACE_EXTRA):
        return 0
    if category == 'People & Body' and sub in PEOPLE:
        return 1
    if category == 'Animals & Nature' and sub.startswith('animal-'):
        return 2
    return None


def select(emoji):
    """[(label, image file name, short name)] in dataset order: by class, then by Unicode's emoji order."""
    picked = [(label_of(e), e['sort_order'], e['image'], e['short_name']) for e in emoji]
    return [(label, image, name) for label, _order, image, name in sorted(p for p in picked if p[0] is not None)]

#----------------------------------------------------------------------------

def read_source(path):
    """emoji.json (parsed) and {image file name: PNG bytes} of img/google/64 from the npm tarball."""
    emoji, images = None, {}
    prefix = f'package/img/google/{SOURCE_SIZE}/'
    with tarfile.open(path, 'r:gz') as tar:
        for member in tar:
            if not member.isfile():
                continue
            if member.name == 'package/emoji.json':
                emoji = json.loads(tar.extractfile(member).read())
            elif member.name.startswith(prefix) and member.name.endswith('.png'):
                images[member.name[len(prefix):]] = tar.extractfile(member).read()
    if emoji is None or not images:
        raise ValueError(f'{path} is not an emoji-datasource-google package (no emoji.json or no {prefix}*.png)')
    return emoji, images


def on_white(png):
    """Decode a PNG and composite it on white: (SOURCE_SIZE, SOURCE_SIZE, 3) uint8."""
    rgba = np.asarray(PIL.Image.open(io.BytesIO(png)).convert('RGBA'), dtype=np.int32)     # (H, W, 4)
    if rgba.shape[:2] != (SOURCE_SIZE, SOURCE_SIZE):
        raise ValueError(f'Expected {SOURCE_SIZE}x{SOURCE_SIZE} images, got {rgba.shape[1]}x{rgba.shape[0]}')
    rgb, alpha = rgba[..., :3], rgba[..., 3:]
    return ((rgb * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)   # integer "over", rounded


def resize(img, resolution):
    if resolution == img.shape[0]:
        return img
    if resolution > img.shape[0]:
        raise ValueError(f'Cannot build {resolution}x{resolution} from {img.shape[0]}x{img.shape[0]} images')
    return np.asarray(PIL.Image.fromarray(img).resize((resolution, resolution), PIL.Image.LANCZOS))

#----------------------------------------------------------------------------

def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def encode_png(img):
    """PNG bytes of an (H, W, 3) uint8 image: 8-bit RGB, no metadata; per row the filter with the smallest sum of
    absolute residuals (libpng's heuristic), zlib level 9. The same pixels always give the same bytes."""
    h, w, _ = img.shape
    x = img.reshape(h, w * 3).astype(np.int16)                          # (H, 3W): one scanline per row
    left = np.pad(x, ((0, 0), (3, 0)))[:, :-3]                          # the byte 3 before (same channel)
    up = np.pad(x, ((1, 0), (0, 0)))[:-1]
    up_left = np.pad(up, ((0, 0), (3, 0)))[:, :-3]
    residuals = np.stack([x, x - left, x - up, x - (left + up) // 2, x - _paeth(left, up, up_left)]) % 256
    cost = np.minimum(residuals, 256 - residuals).sum(axis=2)           # (5, H): residuals read as signed bytes
    kind = cost.argmin(axis=0)                                          # (H,): filter type per row, first on ties
    rows = residuals[kind, np.arange(h)].astype(np.uint8)               # (H, 3W)
    raw = np.concatenate([kind.astype(np.uint8)[:, None], rows], axis=1).tobytes()

    def chunk(tag, data):
        return struct.pack('>I', len(data)) + tag + data + struct.pack('>I', zlib.crc32(tag + data))
    header = struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0)                # 8 bits, RGB, deflate, no interlace
    return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header) + chunk(b'IDAT', zlib.compress(raw, 9)) + chunk(b'IEND', b'')


def write_zip(path, members):
    """A zip of [(name, bytes)] in the given order: stored, fixed date and attributes; written atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + '.tmp')
    with zipfile.ZipFile(tmp, 'w', compression=zipfile.ZIP_STORED) as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)
            info.compress_type = zipfile.ZIP_STORED                     # the PNGs are deflated already
            info.create_system = 3                                      # Unix, on every platform
            info.external_attr = 0o100644 << 16                         # a regular file, rw-r--r--
            zf.writestr(info, data)
    os.replace(tmp, path)

#----------------------------------------------------------------------------

def dataset_members(selected, images, resolution, source_sha256):
    """The zip members of one resolution: StyleGAN3's layout (00000/img00000000.png, ..., dataset.json)."""
    members, labels, emoji = [], [], []
    for idx, (label, image, name) in enumerate(selected):
        fname = f'{idx:08d}'[:5] + f'/img{idx:08d}.png'
        members.append((fname, encode_png(resize(images[image], resolution))))
        labels.append([fname, label])
        emoji.append([fname, image, name])
    meta = {
        'labels':      labels,                                          # all StyleGAN3 reads
        'class_names': list(CLASS_NAMES),
        'emoji':       emoji,                                           # [file, source image, short name]
        'source':      f'{SOURCE_SPEC} (npm), sha256 {source_sha256}, img/google/{SOURCE_SIZE}',
    }
    text = json.dumps(meta, sort_keys=True, separators=(',', ':'), ensure_ascii=True)
    return members + [('dataset.json', text.encode('ascii'))]


def build(source, dest, resolutions=RESOLUTIONS, log=print):
    """Build emoji-RxR.zip in `dest` for each resolution from the npm tarball `source`; return their paths."""
    data = Path(source).read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    if sha256 != SOURCE_SHA256:
        log(f'Note: {source} (sha256 {sha256}) is not the pinned {SOURCE_SPEC}; the zips will differ from '
            f'the committed ones.')
    emoji, sources = read_source(source)
    selected = select(emoji)
    missing = sorted({image for _label, image, _name in selected} - set(sources))
    if missing:
        raise ValueError(f'{source} lacks {len(missing)} images that emoji.json names, e.g. {missing[:3]}')
    images = {image: on_white(sources[image]) for _label, image, _name in selected}
    counts = [sum(label == k for label, _image, _name in selected) for k in range(len(CLASS_NAMES))]
    log(f'{len(selected)} images: ' + ', '.join(f'{n} {c}' for c, n in zip(CLASS_NAMES, counts)))

    Path(dest).mkdir(parents=True, exist_ok=True)
    paths = []
    for resolution in resolutions:
        path = Path(dest) / zip_name(resolution)
        write_zip(path, dataset_members(selected, images, resolution, sha256))
        log(f'Wrote {path} ({path.stat().st_size / 2**20:.2f} MiB)')
        paths.append(path)
    return paths


def npm_pack(folder, spec=SOURCE_SPEC):
    """Download the package tarball into `folder` with `npm pack`; return its path."""
    npm = shutil.which('npm')
    if npm is None:
        raise RuntimeError(f'npm is not installed, so {spec} cannot be fetched. Install Node.js (npm), or download '
                           f'{SOURCE_URL} yourself and pass it as --source.')
    proc = subprocess.run([npm, 'pack', spec, '--silent', '--pack-destination', str(folder)],
                          capture_output=True, text=True)
    tarballs = sorted(Path(folder).glob('*.tgz'))
    if proc.returncode != 0 or len(tarballs) != 1:
        raise RuntimeError(f'`npm pack {spec}` failed: {proc.stderr.strip() or proc.stdout.strip()}')
    return tarballs[0]

#----------------------------------------------------------------------------

@click.command()
@click.option('--source', type=click.Path(exists=True, dir_okay=False),
              help=f'The npm tarball of {SOURCE_SPEC}  [default: fetch it with `npm pack`]')
@click.option('--dest', type=click.Path(file_okay=False), default=str(Path(__file__).parent), show_default=True,
              help='Folder for the zips')
@click.option('--resolution', 'resolutions', type=int, multiple=True, default=RESOLUTIONS, show_default=True)
def main(source, dest, resolutions):
    """Build the default emoji datasets (StyleGAN3 zips) from emoji-datasource-google."""
    try:
        if source is not None:
            build(source, dest, resolutions, log=click.echo)
            return
        with tempfile.TemporaryDirectory() as tmp:
            click.echo(f'Fetching {SOURCE_SPEC} with npm pack')
            build(npm_pack(tmp), dest, resolutions, log=click.echo)
    except (RuntimeError, ValueError, OSError, tarfile.TarError) as err:
        raise click.ClickException(str(err)) from err


if __name__ == '__main__':
    main()
