"""Dagger module of the LLM platform's delivery pipeline (a thin shell over the `deliver` CLI)."""

from .main import LlmPlatform as LlmPlatform
