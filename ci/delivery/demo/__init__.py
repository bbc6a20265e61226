"""``deliver demo``: the main job end to end on the embedded default model, with no cloud account.

- ``run``: check configs and roots, validate the layers, build and publish the modelcar into dev;
- ``schemas``: the schema bundle, found or built as ``deliver schemas`` does (``--schema-source``);
- ``promote``: promote it dev -> staging between two loopback registries, in a scratch git repo;
- ``cli``: the command.
"""
