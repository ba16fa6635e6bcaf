"""The page's way to the classify service, when one is configured (TAV_ATLAS_SERVICE)."""

from __future__ import annotations

import http.client
import json
import os
import urllib.error
import urllib.request

import numpy as np


class ServiceError(Exception):
    """The service could not answer; str(error) says why, for the page."""


def service_url() -> str | None:
    """$TAV_ATLAS_SERVICE (e.g. http://127.0.0.1:9009), or None: use the library directly."""
    url = os.environ.get("TAV_ATLAS_SERVICE", "").strip().rstrip("/")
    return url or None


def classify_remote(url: str, vectors: np.ndarray, timeout: float = 10.0) -> list[dict]:
    """POST /classify for each fingerprint; the service's answers, in order."""
    answers = []
    for v in np.asarray(vectors, dtype=np.float32):
        body = json.dumps({"vector": [float(x) for x in v]}).encode()
        req = urllib.request.Request(
            url + "/classify", data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                answers.append(json.loads(r.read()))
        except urllib.error.HTTPError as err:
            detail = err.read().decode("utf-8", "replace")[:300]
            raise ServiceError(f"The atlas service answered {err.code}: {detail}") from err
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as err:
            raise ServiceError(f"The atlas service at {url} cannot be reached: {err}") from err
    for a in answers:  # the service's shape, or it is not an atlas service
        m = a.get("manifold") if isinstance(a, dict) else None
        if not (
            isinstance(m, dict) and {"zone", "confidence", "cluster_id", "cluster_label"} <= set(m)
        ):
            raise ServiceError(f"The service at {url} did not answer with a classification.")
    return answers
