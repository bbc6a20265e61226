"""Delivery pipeline of a GitOps LLM-inference platform (functional core, no Dagger import)."""
