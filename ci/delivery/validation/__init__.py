"""Validation of an environment's roots and layers: kubeconform against hermetic schemas, then policy rules.

Public surface: ``validate_envs`` (one ``Report`` per environment) and the findings vocabulary.
"""
