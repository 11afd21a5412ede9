"""The bundled HTTP server: `optbench serve MANIFEST...` or `create_app(ServeSettings(...))`.

Needs the `serve` extra (fastapi, uvicorn, prometheus-client, python-multipart, pillow). Imports
artifacts, manifests and runtimes only; never training or transforms.
"""

from optbench.serve.app import app_from_env, create_app
from optbench.serve.settings import ABRoute, ServeSettings

__all__ = ["ABRoute", "ServeSettings", "app_from_env", "create_app"]
