"""The web UI: server-rendered pages (Jinja2, autoescaped, no JavaScript), one module per concept.

The modules are imported by :mod:`signoff.server.app`, which mounts their routers; this
package imports none of them itself (they depend on ``deps``, which depends on ``auth``).
"""
