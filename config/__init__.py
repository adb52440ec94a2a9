"""The process's settings: one pydantic ``BaseSettings`` read from the environment once.

The lowest layer: every package reads its settings from here (the engine its model, detector
and concurrency; the ledger its panel policy; the service its limits; the worker its lease), and
this package imports none of them. Read them through :func:`config.settings.get_settings`
(cached; tests clear the cache after changing the environment).
"""
