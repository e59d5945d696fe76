"""One AMI connection per worker: log in, keep it alive, route events to call legs.

panoramisk speaks the protocol; this module decides what a telephony backend
needs on top of it (docs/asterisk.md, docs/ami-emulator.md "panoramisk facts"):

* **Reconnect with back-off** -- panoramisk reconnects after a fixed delay; we
  set that delay before each try: ``reconnect_min`` doubling up to
  ``reconnect_max``, back to the minimum after a successful login. A refused
  login is remembered as the link's error (``/healthz`` shows it).
* **Silent link** -- panoramisk's own pings are fire-and-forget, so a PBX that
  stops answering is never noticed. We send our own Ping every
  ``ping_interval`` and drop the connection when one goes unanswered for
  ``ping_timeout`` and no event came in that time either; the back-off
  reconnect follows.
* **No duplicate actions** -- panoramisk re-sends actions that got no reply
  before a disconnect. For an ``Originate`` that may already have run, that
  would ring a phone twice, so every action we send is "forgettable": never
  re-sent. Every action is answered by its first ``Response`` (``as_list=False``)
  and everything after it -- ``OriginateResponse``, ``AsyncAGIExec`` -- arrives
  as an event, routed by channel id.
* **Link loss** is told to every listener at once, so calls in flight end with
  a clear status instead of waiting for events that will never come.
"""

from __future__ import annotations

import asyncio
import builtins
import itertools
import logging
from collections.abc import Callable
from typing import Any

import panoramisk

log = logging.getLogger("perezvon.asterisk")

#: every action this plugin sends; none is ever re-sent after a reconnect
ACTIONS = ("login", "ping", "originate", "agi", "hangup", "showdialplan")
#: the event classes a leg needs (docs/asterisk.md: manager.conf `read`); `user`: the inbound-call hook
EVENT_CLASSES = "system,call,dtmf,agi,user"


class LinkDown(Exception):
    """The AMI link is not up (or went down while waiting)."""


class ActionRefused(Exception):
    """Asterisk answered an action with ``Response: Error``."""

    def __init__(self, action: str, message: str) -> None:
        super().__init__(f"{action}: {message}")
        self.action = action
        self.message = message


class _Manager(panoramisk.Manager):
    """panoramisk's Manager with our back-off instead of its fixed reconnect delay."""

    def __init__(self, link: AmiLink, **config: Any) -> None:
        super().__init__(**config)
        self.link = link

    def connection_made(self, f):
        if not f.cancelled() and f.exception() is not None:
            self.link._connect_failed(f.exception())
            self.reconnect_timeout = self.link._next_delay()
            if self.link.closing:
                return
        super().connection_made(f)

    def login(self, future):
        ok = super().login(future)
        if not ok:  # Asterisk closes the connection after a refused login; the back-off retries
            self.link._login_refused()
        return ok

    def connection_lost(self, exc):
        self.reconnect_timeout = self.link._next_delay()
        if self.link.closing:  # no reconnect after stop()
            self._connected = False
            if self.pinger:
                self.pinger.cancel()
            return
        super().connection_lost(exc)

    def connect(self, *args, **kwargs):
        if self.link.closing:
            return None
        return super().connect(*args, **kwargs)


class AmiLink:
    """The worker's AMI connection and the event routing for its legs."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        username: str,
        secret: str,
        ping_interval: float,
        ping_timeout: float,
        reconnect_min: float,
        reconnect_max: float,
    ) -> None:
        self.host, self.port = host, port
        self.ping_interval, self.ping_timeout = ping_interval, ping_timeout
        self.reconnect_min, self.reconnect_max = reconnect_min, reconnect_max
        self._delay = reconnect_min
        self._credentials = {"username": username, "secret": secret}
        self.manager: _Manager | None = None
        self.closing = False
        self.up = asyncio.Event()
        #: why the link is not up, for /healthz and the call's reason ("" when up)
        self.error = "not connected yet"
        self._listeners: dict[str, Callable[[Any], None]] = {}
        #: list actions in progress: ActionID -> (events so far, the name of the closing event, future)
        self._lists: dict[str, tuple[list, str, asyncio.Future]] = {}
        self._list_ids = itertools.count(1)
        self._on_up: list[Callable[[], Any]] = []
        self._on_down: list[Callable[[str], None]] = []
        self._watchdog: asyncio.Task | None = None
        self._login_task: asyncio.Future[None] | None = None
        #: actions sent while the link was up and not answered yet: a drop fails them at once (:meth:`_lost`)
        self._unanswered: set[asyncio.Future[Any]] = set()
        self._connected_at = 0.0
        #: loop time of the last event read from the PBX: a link that talks is not silent
        self._heard_at = 0.0

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.closing = False
        self.manager = _Manager(
            self,
            host=self.host,
            port=self.port,
            events=EVENT_CLASSES,
            loop=loop,
            forgetable_actions=ACTIONS,
            reconnect_timeout=self.reconnect_min,
            # panoramisk's own pinger cannot tell a silent link; ours below can
            ping_delay=10**6,
            ping_interval=10**6,
            on_login=self._logged_in,
            on_disconnect=self._disconnected,
            on_connect=self._tcp_connected,
            **self._credentials,
        )
        self.manager.register_event("*", self._dispatch)
        self.manager.connect()
        self._watchdog = asyncio.create_task(self._watch(), name="ami-watchdog")

    async def stop(self) -> None:
        self.closing = True
        if self._watchdog:
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)
        if self.manager is not None:
            self.manager.close()
        self._lost("the worker is stopping", quiet=True)

    def on_up(self, callback: Callable[[], Any]) -> None:
        """``callback()`` (may be async) runs after each successful login, before the link counts as up."""
        self._on_up.append(callback)

    def on_down(self, callback: Callable[[str], None]) -> None:
        self._on_down.append(callback)

    async def wait_up(self, timeout: float) -> None:
        if self.up.is_set():
            return
        try:
            async with asyncio.timeout(timeout):  # not wait_for: see _send
                await self.up.wait()
        except TimeoutError:
            raise LinkDown(self.error or "the AMI link is down") from None

    # ------------------------------------------------------------------ actions
    async def send(self, action: dict[str, Any], *, timeout: float = 10.0) -> Any:
        """Send one action; return its first Response; raise ActionRefused / LinkDown."""
        self._require_up()
        return await self._send(action, timeout)

    def _require_up(self) -> None:
        if not self.up.is_set() or self.manager is None or self.manager.protocol is None:
            raise LinkDown(self.error or "the AMI link is down")

    async def _send(self, action: dict[str, Any], timeout: float, *, logging_in: bool = False) -> Any:
        manager = self.manager
        assert manager is not None
        future = manager.send_action(dict(action), as_list=False)
        # while logging in the link is not "up" yet; afterwards a drop ends the wait at once: _lost
        # fails the future, rather than each action racing a task (made and cancelled for every
        # action of thousands of calls) that waits for the link to go down
        if not logging_in:
            self._unanswered.add(future)
        try:
            # on a timeout (or the caller giving up) the future is cancelled: nobody reads it now, and
            # an error the link put in it later would be logged as never retrieved. Not wait_for: on
            # Python 3.11 it swallows a cancellation that comes as the answer does (it returns the
            # answer), and the watchdog cancelled by stop() then pinged on forever
            async with asyncio.timeout(timeout):
                response = await future
        except TimeoutError:
            raise LinkDown(f"no answer to {action['Action']} in {timeout:g} s") from None
        finally:
            self._unanswered.discard(future)
        if str(response.get("Response", "")).lower() == "error":
            raise ActionRefused(action["Action"], str(response.get("Message", "")))
        return response

    async def send_during_login(self, action: dict[str, Any], *, timeout: float = 5.0) -> Any:
        """For :meth:`on_up` callbacks: the link is logged in but not "up" for attempts yet."""
        return await self._send(action, timeout, logging_in=True)

    async def list_during_login(self, action: dict[str, Any], complete: str, *, timeout: float = 5.0) -> list:
        """A list action (``EventList: start`` ... ``<complete>``) for :meth:`on_up` callbacks: its events."""
        return await self._list(action, complete, timeout, logging_in=True)

    async def list(self, action: dict[str, Any], complete: str, *, timeout: float = 10.0) -> list:
        """A list action while the link is up: the events between its Response and ``<complete>``."""
        self._require_up()
        return await self._list(action, complete, timeout, logging_in=False)

    async def _list(
        self, action: dict[str, Any], complete: str, timeout: float, *, logging_in: bool
    ) -> builtins.list[Any]:  # `list` here is the method above
        action_id = f"perezvon-list-{next(self._list_ids)}"
        collected: list = []
        done = asyncio.get_running_loop().create_future()
        self._lists[action_id] = (collected, complete, done)
        try:
            await self._send({**action, "ActionID": action_id}, timeout, logging_in=logging_in)
            async with asyncio.timeout(timeout):  # not wait_for: see _send
                await done
            return collected
        except TimeoutError:
            raise LinkDown(f"no end to {action['Action']} in {timeout:g} s") from None
        finally:
            self._lists.pop(action_id, None)

    # ------------------------------------------------------------------ routing
    def listen(self, channel_id: str, callback: Callable[[Any], None]) -> None:
        self._listeners[channel_id] = callback

    def forget(self, channel_id: str) -> None:
        self._listeners.pop(channel_id, None)

    def _dispatch(self, _manager: Any, event: Any) -> None:
        self._heard_at = asyncio.get_running_loop().time()
        if self._lists and (listing := self._lists.get(event.get("ActionID", ""))) is not None:
            collected, complete, done = listing
            if event.get("Event") == complete:
                if not done.done():
                    done.set_result(None)
            else:
                collected.append(event)
            return
        # a leg's own events carry its Uniqueid (= our ChannelId); Dial events name it as DestUniqueid
        for key in ("Uniqueid", "DestUniqueid"):
            channel_id = event.get(key)
            if channel_id and (callback := self._listeners.get(channel_id)) is not None:
                callback(event)
                return

    # ------------------------------------------------------------------ link state
    def _next_delay(self) -> float:
        delay = self._delay
        self._delay = min(self._delay * 2, self.reconnect_max)
        return delay

    def _connect_failed(self, exc: BaseException) -> None:
        self.error = f"Asterisk at {self.host}:{self.port} is unreachable: {exc}"
        log.warning("%s; next try in %.1f s", self.error, self._delay)

    def _tcp_connected(self, _manager: Any) -> None:
        self._connected_at = asyncio.get_running_loop().time()

    def _logged_in(self, _manager: Any) -> None:
        # the loop holds tasks weakly: keep a reference until it is done
        self._login_task = asyncio.ensure_future(self._after_login())

    async def _after_login(self) -> None:
        try:
            for callback in self._on_up:
                result = callback()
                if asyncio.iscoroutine(result):
                    await result
        except Exception:
            log.exception("AMI: the after-login step failed")
        self._delay = self.reconnect_min
        self.error = ""
        self.up.set()
        log.info("AMI: logged in to %s:%s", self.host, self.port)

    def _disconnected(self, _manager: Any, exc: Any) -> None:
        self._lost(f"the AMI link to {self.host}:{self.port} was lost ({exc or 'closed'})")

    def _lost(self, why: str, *, quiet: bool = False) -> None:
        if self.up.is_set():
            (log.info if quiet else log.warning)("AMI: %s", why)
            self.error = why
        self.up.clear()
        unanswered, self._unanswered = self._unanswered, set()
        for future in unanswered:
            if not future.done():
                future.set_exception(LinkDown(self.error or why))
        for callback in list(self._on_down):
            callback(why)

    def _login_refused(self) -> None:
        self.error = (
            f"Asterisk at {self.host}:{self.port} refused the AMI login of "
            f"{self._credentials['username']!r}: check username and secret in [plugins.asterisk]"
        )
        log.error("AMI: %s", self.error)

    async def _watch(self) -> None:
        """Ping the PBX; an unanswered Ping means a silent link: drop it so the reconnect starts.

        A connection that never gets as far as a login answer (the PBX accepts TCP but says
        nothing) is dropped the same way, after the same patience."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.ping_interval)
            manager = self.manager
            if manager is None or manager.protocol is None:
                continue
            if not self.up.is_set():
                if manager._connected and manager.authenticated_future is not None:
                    waited = loop.time() - self._connected_at
                    if waited > max(self.ping_timeout, self.ping_interval):
                        self.error = (
                            f"Asterisk at {self.host}:{self.port} accepted the connection but did not "
                            f"answer the AMI login in {waited:.1f} s"
                        )
                        log.warning("AMI: %s; reconnecting", self.error)
                        self._abort(manager)
                continue
            try:
                await self._send({"Action": "Ping"}, self.ping_timeout)
            except (LinkDown, ActionRefused):
                if self.up.is_set() and loop.time() - self._heard_at < self.ping_timeout:
                    # events still arrive: the link is busy, not silent. With thousands of channels
                    # the Ping's answer queues behind their events; dropping the link then ended
                    # every call on it as interrupted (BENCHMARKS.md, issue 15's 5,000-call run)
                    log.info("AMI: the Ping's answer is late, but events arrive: the link is busy, not silent")
                    continue
                if self.up.is_set():
                    log.warning("AMI: no answer to Ping in %.1f s: the link is silent, reconnecting", self.ping_timeout)
                    self._lost(f"Asterisk at {self.host}:{self.port} stopped answering (silent link)")
                    self._abort(manager)

    @staticmethod
    def _abort(manager: _Manager) -> None:
        transport = getattr(manager.protocol, "transport", None)
        if transport is not None:
            transport.abort()  # connection_lost follows, then the back-off reconnect
