"""A real ``mlflow models serve`` process for tests (see :mod:`anomvae.lifecycle.serving`) and a JSON client."""

import json
import urllib.error
import urllib.request

from anomvae.lifecycle.serving import local_server as serving

__all__ = ["post", "serving"]

REQUEST_TIMEOUT_S = 30


def post(url: str, body: bytes | str) -> tuple[int, dict]:
    """POST JSON; the status and the decoded answer, for errors too."""
    data = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
