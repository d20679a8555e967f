"""``python -m recordings.storage_child FD``: the engine's recording storage process.

Serves :class:`recordings.storage.RecordingStorage` operations on the socket
inherited as file descriptor ``FD`` (see :class:`recordings.storage.ProcessRunner`).
"""

from __future__ import annotations

import socket
import sys

from recordings.storage import serve

if __name__ == "__main__":
    serve(socket.socket(fileno=int(sys.argv[1])))
