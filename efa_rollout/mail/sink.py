"""A local SMTP sink (aiosmtpd): stores every received message as an .eml file.

For demos, tests and benchmarks: `efa mail sink` runs one; point EFA_SMTP_URL at it.
Every received copy gets its own file, so duplicates stay visible.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable
from email.parser import BytesHeaderParser
from email.policy import default
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from efa_rollout.private_files import private_dir, write_private


class FolderSink:
    """aiosmtpd handler writing each message to FOLDER and reporting one line per message."""

    def __init__(self, folder: Path, echo: Callable[[str], None] | None = None) -> None:
        self.folder = folder
        self.echo = echo
        self.count = 0
        self._lock = threading.Lock()
        self._serial = itertools.count(1)
        private_dir(folder)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """Store the message; reply 250."""
        content: bytes = envelope.original_content or envelope.content
        headers = BytesHeaderParser(policy=default).parsebytes(content)
        with self._lock:
            self.count += 1
            serial = next(self._serial)
        name = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{serial:06d}.eml"
        write_private(self.folder / name, content)
        if self.echo:
            self.echo(
                f"{name}  von {envelope.mail_from}  an {', '.join(envelope.rcpt_tos)}  "
                f"{headers.get('Message-ID', '-')}  {headers.get('Subject', '')}"
            )
        return "250 2.0.0 Nachricht gespeichert"


def start_sink(
    folder: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8025,
    echo: Callable[[str], None] | None = None,
) -> Controller:
    """Start a sink in a background thread; call .stop() on the result."""
    controller = Controller(FolderSink(folder, echo), hostname=host, port=port)
    controller.start()
    return controller


def run_sink(
    folder: Path, *, host: str = "127.0.0.1", port: int = 8025, echo: Callable[[str], None] = print
) -> None:
    """Run a sink until interrupted (Ctrl+C)."""
    controller = start_sink(folder, host=host, port=port, echo=echo)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()
