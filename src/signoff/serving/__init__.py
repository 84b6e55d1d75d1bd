"""One model endpoint process: a FastAPI app over a loaded model, run with ``python -m``.

``python -m signoff.serving --name N --model-dir DIR --digest SHA --model-version V --port P``
loads the model (refusing a digest mismatch), warms it up, then serves ``/predict``,
``/health``, ``/version`` and ``/metrics`` on loopback with uvicorn.
"""

from __future__ import annotations

from signoff.serving.app import create_app, warm_up

__all__ = ["create_app", "warm_up"]
