"""Delivery pipeline of a GitOps LLM-inference platform (functional core, no Dagger import)."""

__version__ = "0.1.0"
