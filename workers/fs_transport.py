"""kombu's filesystem transport with atomic message writes.

The stock transport creates the message file, then writes it; a consumer polling at that instant
moves the still-empty file away and fails to decode it, which stops the worker's consumer. Here a
message is written to a hidden temporary name and renamed into place (atomic on POSIX), so a
consumer only ever sees whole messages. A worker's loop returns after each poll, so it notices a
shutdown request at once.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic

from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        # The leading dot keeps a half-written file from matching any queue in _get.
        temporary = os.path.join(self.data_folder_out, f".{name}.tmp")
        try:
            with open(temporary, "wb") as fh:
                fh.write(str_to_bytes(dumps(payload)))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(temporary, final)
        except OSError as exc:
            raise filesystem.ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel

    def drain_events(self, connection, timeout=None):
        # The worker's loop drains with a 2 s timeout and checks for a shutdown request only in
        # between: a stop (evaluate --wait stopping its worker) would wait out up to 2 s of polls.
        # One poll per call instead: the loop comes back to its check every polling_interval.
        if timeout is not None and self.polling_interval:
            timeout = min(timeout, self.polling_interval)
        return super().drain_events(connection, timeout=timeout)
