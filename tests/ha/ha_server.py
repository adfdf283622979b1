"""Home Assistant for the discovery test (tests/ha/ha_discovery.py): its configuration with the
MQTT config entry, an access token, and the `hass` process with its REST and WebSocket APIs.

Run as a script (`python ha_server.py CONFIG_DIR`) it makes the access token: see make_token.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from ha_common import Failure, check, log, wait_for

# startup warnings of this setup that say nothing about c3n-edge
ALLOWED_LOG = [
    re.compile(r"\[homeassistant\.bootstrap\] Skipping pip installation of required modules"),
    re.compile(r"\[homeassistant\.bootstrap\] Support for the running Python version"),
]
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ (WARNING|ERROR|CRITICAL) ")


def make_token(config_dir: Path) -> str:
    """A long-lived access token of a new admin user, made with HA's auth manager in a separate
    process (as `hass --script auth` does) and saved to config_dir/.storage."""
    out = subprocess.run(
        [sys.executable, __file__, str(config_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if out.returncode != 0:
        raise Failure(f"making the HA access token failed:\n{out.stderr[-3000:]}")
    return out.stdout.strip().splitlines()[-1]


async def _make_token(config_dir: str) -> str:
    from datetime import timedelta

    from homeassistant.auth import auth_manager_from_config
    from homeassistant.auth.const import GROUP_ID_ADMIN
    from homeassistant.auth.models import TOKEN_TYPE_LONG_LIVED_ACCESS_TOKEN
    from homeassistant.core import HomeAssistant
    from homeassistant.helpers import device_registry as dr, entity_registry as er

    hass = HomeAssistant(config_dir)
    await asyncio.gather(dr.async_load(hass), er.async_load(hass))
    hass.auth = await auth_manager_from_config(hass, [{"type": "homeassistant"}], [])
    user = await hass.auth.async_create_user("c3n-edge test", group_ids=[GROUP_ID_ADMIN])
    refresh = await hass.auth.async_create_refresh_token(
        user,
        client_name="c3n-edge test",
        token_type=TOKEN_TYPE_LONG_LIVED_ACCESS_TOKEN,
        access_token_expiration=timedelta(days=1),
    )
    token = hass.auth.async_create_access_token(refresh)
    # hass never ran: force the stop, whose final-write stage saves the delayed auth store
    await hass.async_stop(force=True)
    return token


def write_ha_config(cfg: Path, http_port: int, mqtt_port: int) -> None:
    (cfg / ".storage").mkdir(parents=True)
    # No default_config (nothing that discovers or phones home); HA still sets up its default
    # integrations (frontend, ...), mqtt comes from its config entry.
    (cfg / "configuration.yaml").write_text(
        f"""homeassistant:
  name: c3n-edge test
  latitude: 0
  longitude: 0
  elevation: 0
  unit_system: metric
  time_zone: UTC
  country: DE
  currency: EUR
http:
  server_host: 127.0.0.1
  server_port: {http_port}
api:
logger:
  default: info
"""
    )
    entry = {
        "entry_id": "c3nedgetestmqttentry0000000000",
        "version": 1,
        "minor_version": 1,
        "domain": "mqtt",
        "title": f"127.0.0.1:{mqtt_port}",
        # discovery and the birth message on homeassistant/status are HA's defaults
        "data": {"broker": "127.0.0.1", "port": mqtt_port, "discovery": True},
        "options": {},
        "pref_disable_new_entities": False,
        "pref_disable_polling": False,
        "source": "user",
        "unique_id": None,
        "disabled_by": None,
    }
    (cfg / ".storage" / "core.config_entries").write_text(
        json.dumps(
            {
                "version": 1,
                "minor_version": 1,
                "key": "core.config_entries",
                "data": {"entries": [entry]},
            }
        )
    )


class HA:
    """A `hass` process, its REST API and a WebSocket connection recording state_changed."""

    def __init__(self, cfg: Path, port: int, token: str, work: Path):
        self.cfg, self.port, self.token, self.work = cfg, port, token, work
        self.proc: subprocess.Popen | None = None
        self.logs: list[Path] = []
        self.log_pos = 0
        self.session = None
        self.ws = None
        self.reader: asyncio.Task | None = None
        self.pending: dict[int, asyncio.Future] = {}
        self.next_id = 1
        self.changes: list[tuple[float, str, dict | None]] = []  # (time, entity_id, new_state)
        self.base = f"http://127.0.0.1:{port}"

    async def start(self) -> float:
        """Starts hass and waits for its API and WebSocket; returns the start time."""
        import aiohttp

        n = len(self.logs) + 1
        logf = self.work / f"home-assistant-{n}.log"
        self.logs.append(logf)
        self.log_pos = 0
        hass_bin = Path(sys.executable).parent / "hass"
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [str(hass_bin), "-c", str(self.cfg), "--skip-pip", "--log-file", str(logf),
             "--log-no-color"],
            stdout=open(self.work / f"hass-stdout-{n}.txt", "wb"),
            stderr=subprocess.STDOUT,
        )
        if self.session is None:
            self.session = aiohttp.ClientSession(headers={"Authorization": f"Bearer {self.token}"})

        async def api_up():
            if self.proc.poll() is not None:
                raise Failure(f"hass exited with {self.proc.returncode} at start:\n{self.tail()}")
            try:
                async with self.session.get(f"{self.base}/api/") as r:
                    check(r.status != 401, "Home Assistant rejects the test's access token")
                    return r.status == 200
            except aiohttp.ClientError:
                return False

        await wait_for("Home Assistant's REST API", 180, api_up, 0.5)
        log(f"Home Assistant #{n} answers after {time.monotonic() - t0:.1f} s")
        self.ws = await self.session.ws_connect(f"{self.base}/api/websocket", max_msg_size=0)
        msg = await self.ws.receive_json()
        check(msg["type"] == "auth_required", f"websocket: {msg}")
        await self.ws.send_json({"type": "auth", "access_token": self.token})
        msg = await self.ws.receive_json()
        check(msg["type"] == "auth_ok", f"websocket auth: {msg}")
        self.reader = asyncio.create_task(self._read())
        await self.command({"type": "subscribe_events", "event_type": "state_changed"})
        return t0

    async def _read(self):
        import aiohttp

        async for m in self.ws:
            if m.type != aiohttp.WSMsgType.TEXT:
                break
            msg = json.loads(m.data)
            if msg.get("type") == "event":
                d = msg["event"]["data"]
                self.changes.append((time.monotonic(), d["entity_id"], d["new_state"]))
            elif msg.get("type") == "result" and msg.get("id") in self.pending:
                self.pending.pop(msg["id"]).set_result(msg)
        for f in self.pending.values():
            f.set_exception(Failure("websocket closed"))
        self.pending.clear()

    async def command(self, body: dict):
        i = self.next_id
        self.next_id += 1
        fut = asyncio.get_running_loop().create_future()
        self.pending[i] = fut
        await self.ws.send_json({"id": i, **body})
        msg = await asyncio.wait_for(fut, 30)
        check(msg.get("success", False), f"websocket {body['type']}: {msg}")
        return msg.get("result")

    async def state(self, entity_id: str) -> dict | None:
        async with self.session.get(f"{self.base}/api/states/{entity_id}") as r:
            if r.status == 404:
                return None
            check(r.status == 200, f"GET /api/states/{entity_id}: HTTP {r.status}")
            return await r.json()

    async def service(self, domain: str, service: str, data: dict) -> None:
        async with self.session.post(f"{self.base}/api/services/{domain}/{service}",
                                     json=data) as r:
            check(r.status == 200, f"{domain}.{service}: HTTP {r.status} {await r.text()}")

    async def image(self, entity_id: str) -> tuple[int, str, bytes]:
        async with self.session.get(f"{self.base}/api/image_proxy/{entity_id}") as r:
            return r.status, r.headers.get("Content-Type", ""), await r.read()

    def changes_of(self, entity_id: str, since: float = 0.0) -> list[tuple[float, dict | None]]:
        return [(t, s) for (t, e, s) in self.changes if e == entity_id and t >= since]

    async def stop(self) -> None:
        if self.reader:
            await self.ws.close()
            await asyncio.wait([self.reader], timeout=5)
            self.reader = None
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.proc.wait, 60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise Failure("hass did not stop within 60 s of SIGTERM")

    async def close(self) -> None:
        try:
            await self.stop()
        finally:
            if self.session:
                await self.session.close()

    def tail(self, n: int = 60) -> str:
        if not self.logs or not self.logs[-1].exists():
            return "(no log)"
        return "\n".join(self.logs[-1].read_text(errors="replace").splitlines()[-n:])

    def check_log(self) -> None:
        """Fails at the first new WARNING/ERROR line of HA's current log."""
        if not self.logs or not self.logs[-1].exists():
            return
        with open(self.logs[-1], "rb") as f:
            f.seek(self.log_pos)
            data = f.read()
        end = data.rfind(b"\n") + 1  # whole lines only
        self.log_pos += end
        for line in data[:end].decode(errors="replace").splitlines():
            if LOG_LINE.match(line) and not any(a.search(line) for a in ALLOWED_LOG):
                raise Failure(f"Home Assistant logged: {line}")

    def bad_log_lines(self) -> list[str]:
        bad = []
        for p in self.logs:
            if not p.exists():
                continue
            for line in p.read_text(errors="replace").splitlines():
                if LOG_LINE.match(line) and not any(a.search(line) for a in ALLOWED_LOG):
                    bad.append(f"{p.name}: {line}")
        return bad


if __name__ == "__main__":  # make_token's separate process
    print(asyncio.run(_make_token(sys.argv[1])))
