"""The pipeline's shared ground: errors and the exit policy, output, files, YAML, secrets, paths.

Every other package may import core; core imports none of them.
"""
