"""Modelcars: Hugging Face weights at a pinned commit -> reproducible, digest-pinned KServe OCI images.

Modules:

- ``spec``: modelcars/NAME.yaml, the typed spec (``load_spec``)
- ``source``: the weights, from a local directory or the Hugging Face cache/hub
- ``tarlayer``: deterministic, streamed tar layers
- ``digestcache``: file and layer digests remembered, so a no-op rebuild reads no weights
- ``base``: the pinned base image, from a registry or a local OCI layout
- ``busybox``: a minimal busybox base image for air-gapped builds
- ``image``: the modelcar image: layer plan, config, manifest and index
- ``lock``: modelcars/NAME.lock.yaml, what a build produced
- ``pipeline``: what build, publish and verify share (options, the hash pass, the built image)
- ``build``: the image as an OCI layout directory; ``publish``: pushed to an environment's
  registry; ``verify``: rebuilt from the source and compared with the lock
- ``cli``: ``deliver modelcar ...``
"""

from delivery.modelcar.build import BuildResult, build_layout
from delivery.modelcar.busybox import BaseLayout, build_busybox_index, build_busybox_layout
from delivery.modelcar.lock import env_repository, lock_path, read_lock
from delivery.modelcar.pipeline import BuildOptions, BuiltImage, build_image
from delivery.modelcar.publish import PublishResult, publish
from delivery.modelcar.spec import ModelcarSpec, load_spec
from delivery.modelcar.verify import VerifyResult, verify

__all__ = [
    "BaseLayout",
    "BuildOptions",
    "BuildResult",
    "BuiltImage",
    "ModelcarSpec",
    "PublishResult",
    "VerifyResult",
    "build_busybox_index",
    "build_busybox_layout",
    "build_image",
    "build_layout",
    "env_repository",
    "load_spec",
    "lock_path",
    "publish",
    "read_lock",
    "verify",
]
