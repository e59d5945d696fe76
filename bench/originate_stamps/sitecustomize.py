"""When each Originate left the worker, for ``bench/asterisk_calls.py``.

The emulator notes when it *read* an Originate; on a 2-core box it shares the CPU with the
worker, and when its loop falls behind, that note is late by its lag (the bench reports the lag
too). This notes the other end: Python imports ``sitecustomize`` from ``PYTHONPATH`` at start-up;
in a ``perezvon worker`` process with ``PEREZVON_ORIGINATE_STAMPS`` naming a file, the AMI link's
``send`` is wrapped so that every Originate appends ``<ChannelId> <time.monotonic()>`` to that
file just before it is written to the socket (panoramisk writes it synchronously, in the same
turn). Same clock as the bench's: one machine.
"""

from __future__ import annotations

import os
import sys

if os.environ.get("PEREZVON_ORIGINATE_STAMPS") and sys.argv[1:2] == ["worker"]:
    import time

    from perezvon.plugins.asterisk import link

    _stamps = open(os.environ["PEREZVON_ORIGINATE_STAMPS"], "a", buffering=1)  # noqa: SIM115  (line by line: read while the worker runs)
    _send = link.AmiLink._send

    async def _stamped_send(self, action, timeout, *, logging_in=False):  # type: ignore[no-untyped-def]
        if action.get("Action") == "Originate" and self.up.is_set():
            _stamps.write(f"{action.get('ChannelId', '')} {time.monotonic()}\n")
        return await _send(self, action, timeout, logging_in=logging_in)

    link.AmiLink._send = _stamped_send  # type: ignore[method-assign]

    import atexit

    atexit.register(_stamps.close)
