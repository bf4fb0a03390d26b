"""Exploring one wide directory: time to list it and to restore-files it whole.

    /work/venv/bin/python bench/explore_wide_dir.py [--files 20000]

Builds an ext4 image (mke2fs -d) holding one directory of FILES small files and opens it
straight from the raw image (no store: this measures the explorer, not storage reads).
Restoring resolves every file's path, so a name lookup that scans the directory makes the
restore quadratic in the directory's size; an indexed lookup keeps it linear.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.explore import open_volume, restore  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wide-") as tmp:
        base = Path(tmp)
        wide = base / "tree" / "many"
        wide.mkdir(parents=True)
        for i in range(args.files):
            (wide / f"f{i:06d}").write_bytes(b"x" * 10)
        image = base / "wide.img"
        subprocess.run(["mke2fs", "-q", "-t", "ext4", "-N", str(args.files + 5000), "-d",
                        str(base / "tree"), "-F", str(image), "128M"], check=True)
        with open(image, "rb") as fh:
            explorer = open_volume(fh)
            start = time.perf_counter()
            count = len(explorer.listdir("/many"))
            listed = time.perf_counter() - start
            start = time.perf_counter()
            report = restore(explorer, "/many", base / "out")
            restored = time.perf_counter() - start
    print(f"listdir: {count} entries in {listed:.2f} s")
    print(f"restore-files: {report.files} files in {restored:.2f} s "
          f"({report.files / restored:,.0f} files/s)")


if __name__ == "__main__":
    main()
