"""OpenAI-compatible API: chat completions, completions, wrappers as models.

Protocol models (``protocol.py``) know nothing of the engine; ``params.py``,
``structured.py`` and ``tools.py`` translate them into the engine's
``GenerationRequest``; ``chat.py`` and ``completions.py`` are the routes.
"""
