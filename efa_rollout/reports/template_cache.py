"""Compiled report templates kept in the data folder, so the next process need not compile them."""

from __future__ import annotations

import contextlib
from pathlib import Path

from jinja2.bccache import Bucket, FileSystemBytecodeCache

from efa_rollout.private_files import private_dir
from efa_rollout.settings import get_settings


class DataFolderBytecodeCache(FileSystemBytecodeCache):
    """Jinja's bytecode cache in `<data folder>/cache/templates/NAME` (0700), looked up per use."""

    # Compiling the campaign report's templates takes ~60 ms of every `efa report`; loading
    # them compiled ~1 ms. Jinja keys each entry by template and source checksum, so an edited
    # template is compiled again, but not by the environment's options: one NAME per
    # environment. The folder follows the settings (tests switch data folders).

    def __init__(self, name: str) -> None:
        super().__init__(directory="", pattern="%s.cache")
        self.name = name

    def _get_cache_filename(self, bucket: Bucket) -> str:
        folder = private_dir(get_settings().data_dir.resolve() / "cache" / "templates" / self.name)
        return str(Path(folder) / (self.pattern % (bucket.key,)))

    def dump_bytecode(self, bucket: Bucket) -> None:
        # A cache only: a read-only or full data folder must not fail the report.
        with contextlib.suppress(OSError):
            super().dump_bytecode(bucket)
