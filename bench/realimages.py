"""Real images for the fidelity gate: benign files shipped by Debian packages, by kind and size.

Nothing here is generated. The packages (``.ci/real-images`` installs them) ship icons
and clip art with transparency (Adwaita, hicolor, Tango, desktop-base), line art
(Tux Paint's colouring starters), screenshots and text-heavy figures (GNOME's user
help, Tux Paint's manual), game artwork (LBreakout2), artwork and photos (desktop-base,
MATE's and GNOME's backgrounds, Matplotlib's sample photo). The kind comes from where
a file lives, except that palette (``P``) and greyscale (``L``, ``LA``, ``1``) files
form kinds of their own. Only two kinds of change are made, and both are said: photos
and artwork are *resized* (Lanczos, saved as JPEG q92) to reach size bands that no
package ships (above 12 MP, up to 50 MP, and photos below 0.26 MP).

``TEST_PACKAGES`` are enough for the test suite's small sample; ``make bench`` also
reads the large backgrounds of ``BENCH_PACKAGES``. Absent files are skipped: a machine
without the packages gets an empty corpus (tests then skip).
"""

from __future__ import annotations

import hashlib
import io
import math
import random
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from hashguard.hashing.fidelity import Sample

SHARE = Path("/usr/share")

#: (Debian package, glob under /usr/share, kind). The first match of a file wins.
SOURCES: tuple[tuple[str, str, str], ...] = (
    ("mate-backgrounds", "backgrounds/mate/nature/*.jpg", "photo"),
    ("mate-backgrounds", "backgrounds/mate/abstract/Elephants*.jpg", "photo"),
    ("python-matplotlib-data", "matplotlib/mpl-data/sample_data/grace_hopper.jpg", "photo"),
    ("mate-backgrounds", "backgrounds/mate/*/*.*", "artwork"),
    ("gnome-backgrounds", "backgrounds/gnome/*.webp", "artwork"),
    ("desktop-base", "desktop-base/*/*/*.*", "artwork"),
    ("desktop-base", "plasma/look-and-feel/org.debian.desktop/contents/previews/*", "artwork"),
    ("lbreakout2-data", "games/lbreakout2/gfx/**/*.png", "artwork"),
    ("tuxpaint-data", "tuxpaint/starters/*.png", "line art"),
    ("gnome-user-docs", "help/C/*/figures/*.png", "screenshot"),
    ("tuxpaint-data", "doc/tuxpaint-data/html/images/*.*", "screenshot"),
    ("adwaita-icon-theme", "icons/Adwaita/*/*/*.png", "icon"),
    ("hicolor-icon-theme", "icons/hicolor/*/*/*.png", "icon"),
    ("tango-icon-theme", "icons/Tango/*/*/*.png", "icon"),
    ("desktop-base", "icons/desktop-base/*/*/*.png", "icon"),
)
TEST_PACKAGES = frozenset(
    {
        "adwaita-icon-theme",
        "hicolor-icon-theme",
        "tango-icon-theme",
        "desktop-base",
        "tuxpaint-data",
        "gnome-user-docs",
        "lbreakout2-data",
        "python-matplotlib-data",
    }
)
BENCH_PACKAGES = TEST_PACKAGES | {"mate-backgrounds", "gnome-backgrounds"}
_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff"}
_GREY_MODES = {"L", "LA", "1", "I", "I;16"}
#: Band name and its upper bound in pixels (exclusive); 32 x 32 is the smallest image.
BANDS: tuple[tuple[str, int], ...] = (
    ("32-63 px", 64 * 64),
    ("64-255 px", 256 * 256),
    ("256-511 px", 512 * 512),
    ("0.26-2 MP", 2_000_000),
    ("2-12 MP", 12_000_000),
    ("12-50 MP", 50_000_001),
)
MIN_SIDE = 32


def band_of(pixels: int) -> str:
    for name, bound in BANDS:
        if pixels < bound:
            return name
    raise ValueError(f"{pixels} px is over the largest band")


@dataclass(frozen=True, kw_only=True, slots=True)
class RealImage:
    path: Path
    package: str
    kind: str
    width: int
    height: int
    image_format: str

    @property
    def band(self) -> str:
        return band_of(self.width * self.height)


def discover(packages: frozenset[str] = BENCH_PACKAGES) -> list[RealImage]:
    """Every readable image of at least 32 x 32 px those packages installed, one per content."""
    found: list[RealImage] = []
    seen: set[str] = set()
    for package, pattern, kind in SOURCES:
        if package not in packages:
            continue
        for path in sorted(SHARE.glob(pattern)):
            if path.suffix.lower() not in _SUFFIXES or not path.is_file():
                continue
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            if digest in seen:
                continue
            seen.add(digest)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    with Image.open(io.BytesIO(data)) as image:
                        width, height = image.size
                        mode, image_format = image.mode, image.format or ""
            except Exception:  # noqa: BLE001 - a file Pillow cannot open is not a sample
                continue
            if min(width, height) < MIN_SIDE or width * height >= BANDS[-1][1]:
                continue
            if mode == "P":
                kind_here = "palette"
            elif mode in _GREY_MODES:
                kind_here = "greyscale"
            else:
                kind_here = kind
            found.append(
                RealImage(
                    path=path,
                    package=package,
                    kind=kind_here,
                    width=width,
                    height=height,
                    image_format=image_format,
                )
            )
    return found


#: Bands whose files cost a second or more per hash on the reference path.
LARGE_BANDS = frozenset({"2-12 MP", "12-50 MP"})


def pick(
    images: list[RealImage], per_group: int, seed: int = 22, *, per_large_group: int | None = None
) -> list[RealImage]:
    """Up to ``per_group`` images of each (kind, band) (``per_large_group`` in
    ``LARGE_BANDS``), chosen at random with a fixed seed."""
    groups: dict[tuple[str, str], list[RealImage]] = {}
    for image in images:
        groups.setdefault((image.kind, image.band), []).append(image)
    rng = random.Random(seed)
    chosen = []
    for key in sorted(groups):
        members = groups[key]
        rng.shuffle(members)
        large = per_large_group is not None and key[1] in LARGE_BANDS
        chosen += members[: per_large_group if large else per_group]
    return chosen


def resized(image: RealImage, pixels: int) -> bytes:
    """``image`` resized (Lanczos, aspect kept) to about ``pixels`` px, as JPEG q92."""
    with Image.open(image.path) as source:
        rgb = source.convert("RGB")
    scale = math.sqrt(pixels / (image.width * image.height))
    size = (max(MIN_SIDE, round(image.width * scale)), max(MIN_SIDE, round(image.height * scale)))
    out = io.BytesIO()
    rgb.resize(size, Image.Resampling.LANCZOS).save(out, "JPEG", quality=92)
    return out.getvalue()


def native_samples(images: list[RealImage]) -> list[Sample]:
    return [
        Sample(
            name=f"{image.package}:{image.path.relative_to(SHARE)}",
            kind=image.kind,
            band=image.band,
            data=image.path.read_bytes(),
        )
        for image in images
    ]


#: Sizes resized photos are made at, one per band the packages do not fill with photos.
RESIZE_TARGETS = (48 * 48, 200 * 150, 480 * 360, 1152 * 864, 4000 * 3000, 8660 * 5773)


def resized_samples(
    images: list[RealImage], targets: tuple[int, ...], per_target: int, kinds: frozenset[str]
) -> list[Sample]:
    """``per_target`` images of ``kinds`` resized to each of ``targets`` (pixel counts)."""
    sources = sorted(
        (image for image in images if image.kind in kinds), key=lambda image: str(image.path)
    )
    samples = []
    for index, target in enumerate(targets):
        for offset in range(min(per_target, len(sources))):
            image = sources[(index * per_target + offset) % len(sources)]
            data = resized(image, target)
            with Image.open(io.BytesIO(data)) as made:
                width, height = made.size
            name = f"{image.package}:{image.path.relative_to(SHARE)}"
            samples.append(
                Sample(
                    name=f"{name} resized to {width}x{height}",
                    kind=image.kind,
                    band=band_of(width * height),
                    data=data,
                )
            )
    return samples
