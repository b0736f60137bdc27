"""POST /v1/images/generations: the request's orchestration, through the same edge as chat.

Authenticate, admit within the rate limits (a request; the token window on the prompt's ceiling),
parse, hold the budget for `n` images at the price of their size and quality (billing's dearest
upstream), ask a worker on `images.request`, answer in OpenAI's shape. Not cached: an image is a
new draw each time.

Images too large for the worker's reply (one NATS message) wait in the MEDIA bucket, one object
per b64_json (`b64_object`): the answer is then written as it is read, chunk by chunk, and each
object deleted after (lobe.gateway.image_objects).
"""

from __future__ import annotations

from aiohttp import web

from lobe.gateway.accounting import Accounting
from lobe.gateway.image_objects import stream_images
from lobe.gateway.request_body import parse_images_body
from lobe.gateway.resources import RESOURCES
from lobe.gateway.route_headers import route_headers
from lobe.gateway.worker_request import admitted_event, ask_workers, failed, media_endpoint, no_answer
from lobe.shared.events.media import IMAGES_REQUEST, ImagesAnswer, ImagesRequested


async def images(request: web.Request) -> web.StreamResponse:
    return await media_endpoint("images", request, _images)


async def _images(request: web.Request, account: Accounting) -> web.StreamResponse:
    resources = request.app[RESOURCES]
    event = await admitted_event(request, account, parse_images_body, ImagesRequested)
    reply = await ask_workers(resources, IMAGES_REQUEST, event)
    headers = {"X-Request-Id": account.request_id}
    if not isinstance(reply, ImagesAnswer):
        raise no_answer(account, resources.settings.request_timeout_s, "images")
    account.media_answered()
    headers |= route_headers(reply.route, resources.settings.expose_deployment_names)
    if reply.error is not None:
        raise failed(reply.error, headers)
    if any(image.b64_object for image in reply.images):
        return await stream_images(request, reply, headers, resources.bus)
    data = [image.model_dump(exclude_none=True) for image in reply.images]
    return web.json_response({"created": reply.created, "data": data}, headers=headers)
