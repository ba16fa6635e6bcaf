"""The generation service: the app's scheduler behind OpenAI's API, with attention.

protocol   the requests (pydantic), the run settings they ask for, OpenAI's error shape
attention  a written token's attention tokens: the top-k keys of its mean attention row,
           its fingerprint and zone
api        the FastAPI app: /v1/models, /v1/completions, /v1/chat/completions, /health,
           and /v1/tav/runs for app servers
forward    every finished run's fingerprints, sent to the atlas sidecar (--sidecar)
replicas   the same app as a Ray Serve deployment of N replicas (--replicas)
remote     an app server's scheduler whose runs a service writes (TAV_GENERATION_URL)
http       what both services do at their door: a body limit, input errors never echoed
`uv run python -m lib.serve` starts it (uvicorn; see `--help`).
"""
