"""Echo pods: one HTTP listener per pod on the pod's own 127.x address, answering every path
with the pod's hostname and no trailing newline, as agnhost serve-hostname does. A pod listens
once it is Running (a Pending pod has no container yet) and until its object is gone."""

from __future__ import annotations

import asyncio
import socket

from aiohttp import web

from ssdns.sandbox.world import SandboxPod, World, every_world


HANG = 600.0  # seconds a hung pod holds a request: longer than any check waits


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class EchoPods:
    def __init__(self, world: World):
        self.world = world
        self.requests = 0
        self._sites: dict[str, web.TCPSite] = {}  # ip -> listener
        self._stopping = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)

    async def start(self) -> None:
        await self._runner.setup()
        if not self.world.port:
            self.world.port = free_port(self.world.pods[0].ip if self.world.pods else "127.10.0.1")
            self.world.changed()
        for n in self.world.neighbours:  # one port for every StatefulSet the sandbox serves
            n.port = self.world.port
        await self.sync()

    async def sync(self) -> None:
        """Listen on exactly the IPs of pods that are up: a pod that moved or went away stops answering."""
        want = {p.ip for w in every_world(self.world) for p in w.pods if p.http_up and p.phase == "Running"}
        for ip in list(self._sites):
            if ip not in want:
                await self._sites.pop(ip).stop()
        for ip in want - set(self._sites):
            site = web.TCPSite(self._runner, ip, self.world.port, reuse_address=True)
            await site.start()
            self._sites[ip] = site

    async def stop(self) -> None:
        self._stopping.set()  # release hung requests, so the server can shut down at once
        await self._runner.cleanup()
        self._sites.clear()

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        ip = request.transport.get_extra_info("sockname")[0] if request.transport else None
        pod: SandboxPod | None = None
        if isinstance(ip, str):
            pod = next((p for w in every_world(self.world) if (p := w.pod_by_ip(ip)) is not None), None)
        if pod is None:
            return web.Response(status=503, text="no pod at this address")
        if pod.http_hang:
            try:  # hold the request until the sandbox stops (bounded)
                await asyncio.wait_for(self._stopping.wait(), HANG)
            except asyncio.TimeoutError:
                pass
        return web.Response(text=pod.answer_as or pod.name)
