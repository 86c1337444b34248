"""One ASGI application for the portal: /kube/ goes to the gateway, and so does any
request bearing a personal vcluster token (gateway.proxy.addressed_by_token); everything
else to Django. Served by uvicorn (see docs/gateway.md). The router also answers the ASGI
lifespan, which Django does not: the gateway starts its attribution writer at start-up
and writes what is pending at shutdown."""

from .proxy import PREFIX, Gateway, addressed_by_token


class Router:
    def __init__(self, django_app, gateway: Gateway | None = None):
        self.django = django_app
        self.gateway = gateway or Gateway()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["path"].startswith(PREFIX) or addressed_by_token(scope):
            await self.gateway(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1000})  # the portal's pages use none
        else:
            await self.django(scope, receive, send)

    async def _lifespan(self, receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.gateway.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.gateway.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return
