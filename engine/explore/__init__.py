"""Reading inside a stored image: QCOW2 or raw → partitions / LVM → filesystem → files.

    from engine.explore import open_volume, diff, restore
    with store.open_image(ref) as image:
        explorer = open_volume(image)
        explorer.listdir("/etc")      # list[Entry]
        explorer.read_file("/etc/hosts")

Modules: ``image`` (container), ``volumes`` (partition tables, LVM), ``filesystems``
(recognition, ext2/3/4), ``explorer`` (the typed API), ``names`` (escaped paths: any name,
even one holding '/', written safely and read back; ``<N>`` names an entry by inode),
``diff``, ``restore`` (safe writing), ``errors`` (what cannot be opened and why). See ``explorer`` for how several filesystems in
one image are addressed.
"""
from engine.explore.diff import Change, DiffResult, diff
from engine.explore.entries import Entry, VolumeInfo
from engine.explore.errors import (AmbiguousNameError, DamagedDataError, EncryptedVolumeError,
                                   ExploreError, NoFilesystemError, PathNotFoundError,
                                   UnsupportedFilesystemError, UnsupportedImageError)
from engine.explore.explorer import Explorer, open_volume
from engine.explore.restore import RestoreReport, restore

__all__ = ["Change", "DiffResult", "diff", "Entry", "VolumeInfo", "AmbiguousNameError",
           "DamagedDataError", "EncryptedVolumeError",
           "ExploreError", "NoFilesystemError", "PathNotFoundError",
           "UnsupportedFilesystemError", "UnsupportedImageError", "Explorer", "open_volume",
           "RestoreReport", "restore"]
