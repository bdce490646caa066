"""The default emoji datasets: the build script is reproducible and right on a small synthetic npm tarball; the
committed zips have StyleGAN3's layout, labels and size, match a rebuild from the real tarball (when it is here),
and load with StyleGAN3's ImageFolderDataset."""

import hashlib
import io
import json
import os
import re
import tarfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from fpa_plugin.training_configs.datasets import CLASS_NAMES, RESOLUTIONS, build_emoji, default_dataset

REAL_TARBALL = Path(os.environ.get('FPA_EMOJI_TARBALL', '/tmp/emoji/emoji-datasource-google-16.0.0.tgz'))

#----------------------------------------------------------------------------
# A synthetic emoji-datasource-google tarball: (category, subcategory, sort_order, has image) -> expected label.

ENTRIES = [
    ('Smileys & Emotion', 'face-smiling',      2,  True,  0),
    ('Smileys & Emotion', 'cat-face',          1,  True,  0),
    ('Smileys & Emotion', 'face-concerned',    3,  False, None),   # has_img_google false
    ('Smileys & Emotion', 'heart',             4,  True,  None),
    ('People & Body',     'person-role',       5,  True,  1),      # with a skin-tone variant, left out
    ('People & Body',     'hand-fingers-open', 6,  True,  None),
    ('People & Body',     'family',            7,  True,  None),
    ('Animals & Nature',  'animal-mammal',     9,  True,  2),
    ('Animals & Nature',  'animal-bird',       8,  True,  2),
    ('Animals & Nature',  'plant-flower',      10, True,  None),
    ('Flags',             'country-flag',      11, True,  None),
]


def _rgba(seed):
    """64x64 RGBA: a coloured disc with a soft edge over transparency, plus noise (every alpha from 0 to 255)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:64, :64]
    alpha = np.clip(255 * (24 - np.hypot(yy - 31.5, xx - 31.5)) / 6, 0, 255)
    rgb = rng.integers(0, 256, 3) + rng.integers(-20, 21, (64, 64, 3))
    return np.dstack([np.clip(rgb, 0, 255), alpha]).astype(np.uint8)


def _png(array):
    buf = io.BytesIO()
    PIL.Image.fromarray(array).save(buf, format='png')
    return buf.getvalue()


def make_tarball(path):
    """Write the tarball; return {image name: RGBA array} of the images the build should keep, in order."""
    emoji, files, kept = [], {}, []
    for i, (category, sub, order, has_img, label) in enumerate(ENTRIES):
        image = f'{i:04x}.png'
        entry = dict(name=f'E{i}', short_name=f'e{i}', image=image, category=category, subcategory=sub,
                     sort_order=order, has_img_google=has_img)
        if sub == 'person-role':
            entry['skin_variations'] = {'1F3FB': dict(image=f'{i:04x}-1f3fb.png', has_img_google=True)}
            files[f'{i:04x}-1f3fb.png'] = _png(_rgba(100 + i))
        emoji.append(entry)
        files[image] = _png(_rgba(i))
        if label is not None:
            kept.append((label, order, image))
    with tarfile.open(path, 'w:gz') as tar:
        members = {'package/emoji.json': json.dumps(emoji).encode(), 'package/LICENSE': b'MIT'}
        members.update({f'package/img/google/64/{name}': data for name, data in files.items()})
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return {image: _rgba(int(image[:4], 16)) for _label, _order, image in sorted(kept)}, \
           [label for label, _order, _image in sorted(kept)]


def read_zip(path):
    """(image names, {name: (H, W, 3) uint8}, dataset.json) of a StyleGAN3 zip; checks the layout."""
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        assert names == sorted(names) and names[-1] == 'dataset.json'
        images = names[:-1]
        assert images == [f'{i:08d}'[:5] + f'/img{i:08d}.png' for i in range(len(images))]
        pixels = {}
        for name in images:
            img = PIL.Image.open(io.BytesIO(zf.read(name)))
            assert img.format == 'PNG' and img.mode == 'RGB', (name, img.format, img.mode)
            pixels[name] = np.asarray(img)
        meta = json.loads(zf.read('dataset.json'))
    return images, pixels, meta

#----------------------------------------------------------------------------

def test_build_is_reproducible_and_right(tmp_path):
    expected, labels = make_tarball(tmp_path / 'src.tgz')
    out_a = build_emoji.build(tmp_path / 'src.tgz', tmp_path / 'a', log=lambda msg: None)
    out_b = build_emoji.build(tmp_path / 'src.tgz', tmp_path / 'b', log=lambda msg: None)
    assert [p.name for p in out_a] == ['emoji-32x32.zip', 'emoji-64x64.zip']
    for a, b in zip(out_a, out_b):
        assert a.read_bytes() == b.read_bytes(), f'{a.name}: two builds from the same tarball differ'

    for path, resolution in zip(out_a, RESOLUTIONS):
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                assert info.date_time == (1980, 1, 1, 0, 0, 0) and info.compress_type == zipfile.ZIP_STORED
        names, pixels, meta = read_zip(path)
        assert [image for _f, image, _n in meta['emoji']] == list(expected)     # by class, then sort_order
        assert meta['labels'] == [[f, label] for f, label in zip(names, labels)]
        assert meta['class_names'] == list(CLASS_NAMES)
        for name, rgba in zip(names, expected.values()):
            rgb, alpha = rgba[..., :3].astype(np.float64), rgba[..., 3:] / 255.0
            on_white = np.rint(rgb * alpha + 255 * (1 - alpha)).astype(np.uint8)  # x/255 never ties
            if resolution != 64:
                on_white = np.asarray(PIL.Image.fromarray(on_white).resize((resolution, resolution),
                                                                           PIL.Image.LANCZOS))
            np.testing.assert_array_equal(pixels[name], on_white, err_msg=f'{path.name}:{name}')


def test_build_follows_the_source(tmp_path):
    make_tarball(tmp_path / 'src.tgz')
    first = build_emoji.build(tmp_path / 'src.tgz', tmp_path / 'a', resolutions=(32,), log=lambda msg: None)[0]
    with tarfile.open(tmp_path / 'src.tgz') as tar:                     # the same package, one image changed
        members = [(m, tar.extractfile(m).read()) for m in tar]
    with tarfile.open(tmp_path / 'other.tgz', 'w:gz') as tar:
        for member, data in members:
            if member.name.endswith('/0000.png'):
                data = _png(255 - _rgba(0))
                member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    notes = []
    second = build_emoji.build(tmp_path / 'other.tgz', tmp_path / 'b', resolutions=(32,), log=notes.append)[0]
    assert first.read_bytes() != second.read_bytes()
    assert any('not the pinned' in note for note in notes)


def test_encode_png_round_trips():
    rng = np.random.default_rng(0)
    filters = set()
    for h, w in [(1, 1), (7, 5), (63, 64), (32, 32)]:
        across = np.broadcast_to(np.linspace(0, 255, w)[None, :, None], (h, w, 3))   # Sub's case
        down = np.broadcast_to(np.linspace(0, 255, h)[:, None, None], (h, w, 3))     # Up's case
        for img in [rng.integers(0, 256, (h, w, 3)), across, down, across + down + rng.integers(0, 9, (h, w, 3))]:
            img = np.clip(img, 0, 255).astype(np.uint8)
            data = build_emoji.encode_png(img)
            assert data == build_emoji.encode_png(img.copy())
            decoded = PIL.Image.open(io.BytesIO(data))
            assert decoded.mode == 'RGB' and decoded.info == {}, decoded.info      # no metadata
            np.testing.assert_array_equal(np.asarray(decoded), img)
            raw = zlib.decompress(data[data.index(b'IDAT') + 4:data.index(b'IEND') - 8])
            filters |= set(raw[::1 + w * 3])                            # the filter byte of every row
    assert len(filters) >= 3, f'only the PNG filters {filters} were exercised'


def test_npm_missing_is_explained(monkeypatch, tmp_path):
    monkeypatch.setattr(build_emoji.shutil, 'which', lambda name: None)
    with pytest.raises(RuntimeError, match='npm is not installed') as err:
        build_emoji.npm_pack(tmp_path)
    assert build_emoji.SOURCE_URL in str(err.value)

#----------------------------------------------------------------------------

@pytest.fixture(scope='module')
def committed():
    """{resolution: (path, image names, pixels, dataset.json)} of the installed zips."""
    return {r: (default_dataset(r), *read_zip(default_dataset(r))) for r in RESOLUTIONS}


def test_committed_zips(committed):
    assert sum(path.stat().st_size for path, *_ in committed.values()) < 6e6
    emoji = {r: meta['emoji'] for r, (_path, _names, _pixels, meta) in committed.items()}
    assert emoji[32] == emoji[64]                                      # the same images in the same order
    for r, (path, names, pixels, meta) in committed.items():
        assert all(img.shape == (r, r, 3) and img.dtype == np.uint8 for img in pixels.values())
        assert [f for f, _label in meta['labels']] == names
        labels = np.array([label for _f, label in meta['labels']])
        assert set(labels) == set(range(len(CLASS_NAMES))), f'{path.name}: labels {sorted(set(labels))}'
        assert np.all(np.diff(labels) >= 0)                             # grouped by class
        assert min(np.bincount(labels)) >= 100 and 300 <= len(names) <= 3000
        corners = np.stack([img[[0, 0, -1, -1], [0, -1, 0, -1]] for img in pixels.values()])
        assert (corners == 255).mean() > 0.95, f'{path.name}: the backgrounds are not white'
        assert np.mean([img.std() for img in pixels.values()]) > 30     # not blank, not washed out
    with pytest.raises(ValueError):
        default_dataset(128)


@pytest.fixture(scope='module')
def rebuilt(tmp_path_factory):
    if not REAL_TARBALL.is_file():
        pytest.skip(f'{REAL_TARBALL} is not here (set FPA_EMOJI_TARBALL): the rebuild check did not run')
    if hashlib.sha256(REAL_TARBALL.read_bytes()).hexdigest() != build_emoji.SOURCE_SHA256:
        pytest.fail(f'{REAL_TARBALL} is not {build_emoji.SOURCE_SPEC} (sha256 differs)')
    dest = tmp_path_factory.mktemp('emoji-rebuild')
    return build_emoji.build(REAL_TARBALL, dest, log=lambda msg: None)


def test_committed_zips_match_a_rebuild(committed, rebuilt):
    for path in rebuilt:
        r = int(path.stem.split('x')[-1])
        names, pixels, meta = read_zip(path)
        assert meta == committed[r][3], f'{path.name}: dataset.json differs'
        for name in names:
            np.testing.assert_array_equal(pixels[name], committed[r][2][name], err_msg=f'{path.name}:{name}')


def test_committed_zips_match_a_rebuild_bytewise(committed, rebuilt):
    if zlib.ZLIB_RUNTIME_VERSION != build_emoji.BUILT_WITH_ZLIB:
        pytest.skip(f'zlib {zlib.ZLIB_RUNTIME_VERSION} here, {build_emoji.BUILT_WITH_ZLIB} for the committed zips: '
                    f'the PNGs may deflate differently (the pixels were compared)')
    for path in rebuilt:
        r = int(path.stem.split('x')[-1])
        assert path.read_bytes() == committed[r][0].read_bytes(), f'{path.name} differs from the committed one'

#----------------------------------------------------------------------------

@pytest.mark.host
def test_stylegan3_loads_them(stylegan3, committed):
    from fpa_plugin.stylegan3.checkout import import_host
    import_host(stylegan3)
    from training.dataset import ImageFolderDataset
    for r, (path, names, pixels, meta) in committed.items():
        dataset = ImageFolderDataset(path=str(path), use_labels=True, xflip=True)
        assert (len(dataset), dataset.resolution, dataset.num_channels) == (2 * len(names), r, 3)
        assert dataset.label_dim == len(CLASS_NAMES)
        for idx in [0, len(names) - 1, len(names)]:                    # first, last, first mirrored
            image, label = dataset[idx]
            raw = idx % len(names)
            expected = pixels[names[raw]].transpose(2, 0, 1)           # (3, r, r)
            np.testing.assert_array_equal(image, expected[:, :, ::-1] if idx >= len(names) else expected)
            assert label.tolist() == np.eye(len(CLASS_NAMES))[meta['labels'][raw][1]].tolist()
        dataset.close()
