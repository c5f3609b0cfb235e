"""Subcommands: one module each, with ``register(subparsers)`` and ``run(ns, env) -> int``."""
