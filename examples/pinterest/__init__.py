"""A Pinterest-like HTTP API on FastAPI and asyncfeeds.

``feeds.py`` holds what the web app and the fanout workers share (settings,
verbs, feeds, the manager); ``app.py`` is the FastAPI app. Run both from the
repository root, as ``app.py`` explains.
"""
