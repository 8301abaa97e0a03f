"""Download and unpack COCO train2014 (82,783 images, 13 GB) for `data=coco`.

    python scripts/download_coco.py --dest data/coco        # then data.root=data/coco/train2014

Resumes an interrupted download (HTTP Range), unpacks with a progress bar, and checks the count.
"""

from __future__ import annotations

import argparse
import sys
import urllib.request
import zipfile
from pathlib import Path

from tqdm import tqdm

URL = "http://images.cocodataset.org/zips/train2014.zip"
EXPECTED_IMAGES = 82783


def download(url: str, target: Path) -> None:
    """Fetch `url` to `target`, continuing a partial `<target>.part` where it stopped."""
    partial = target.with_suffix(target.suffix + ".part")
    done = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={done}-"} if done else {})
    with urllib.request.urlopen(request, timeout=60) as response:
        if done and response.status != 206:
            done = 0  # the server ignored the range: start again
        total = done + int(response.headers.get("Content-Length", 0))
        with (
            open(partial, "ab" if done else "wb") as stream,
            tqdm(total=total, initial=done, unit="B", unit_scale=True, desc=target.name) as progress,
        ):
            while chunk := response.read(1 << 20):
                stream.write(chunk)
                progress.update(len(chunk))
    partial.replace(target)


def unpack(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zipped:
        for member in tqdm(zipped.infolist(), desc="unzip", unit="file"):
            zipped.extract(member, dest)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dest", type=Path, default=Path("data/coco"), help="folder for the zip and train2014/")
    parser.add_argument("--keep-zip", action="store_true", help="keep train2014.zip after unpacking")
    args = parser.parse_args()
    args.dest.mkdir(parents=True, exist_ok=True)
    archive = args.dest / "train2014.zip"
    try:
        if not archive.exists():
            download(URL, archive)
        unpack(archive, args.dest)
    except (OSError, zipfile.BadZipFile) as error:
        print(f"error: {error}. Run the script again to resume.", file=sys.stderr)
        return 2
    count = sum(1 for _ in (args.dest / "train2014").glob("*.jpg"))
    if count != EXPECTED_IMAGES:
        print(f"warning: found {count} images, expected {EXPECTED_IMAGES}", file=sys.stderr)
    if not args.keep_zip:
        archive.unlink()
    print(f"COCO train2014 ready: {count} images. Train with data.root={args.dest / 'train2014'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
