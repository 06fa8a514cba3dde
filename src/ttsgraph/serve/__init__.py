"""`ttsgraph serve`: found graphs behind the OpenAI chat-completions API.

Modules: `options` (settings, checked before binding a port), `graphs` (what is served),
`protocol` (the request), `prompts` (messages → node prompts), `engine` (running a request's
graphs: sampling, rollouts, cache), `streaming` (SSE), `responses` (response objects and the
`ttsgraph` extension), `limits` (admission), `metrics`, `health`, `errors`, `app` (routes).
"""

from ttsgraph.serve.app import create_app
from ttsgraph.serve.options import Prepared, ServeOptions, prepare

__all__ = ["Prepared", "ServeOptions", "create_app", "prepare"]
