"""One model endpoint process: a FastAPI app over loaded model versions, run with ``python -m``.

``python -m signoff.serving --name N --model-dir DIR --digest SHA --model-version V --port P``
loads the model (refusing a digest mismatch), warms it up, then serves ``/predict``,
``/feedback``, ``/health``, ``/version`` and ``/metrics`` on loopback with uvicorn, plus the
token-protected ``/admin`` API through which new versions are loaded beside the serving one
and traffic is switched between them.
"""

from __future__ import annotations

from signoff.serving.app import create_app
from signoff.serving.versions import warm_up

__all__ = ["create_app", "warm_up"]
