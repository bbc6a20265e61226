#!/usr/bin/env bash
# Install the Dagger CLI the module is pinned to (dagger.json engineVersion; tests/test_ci_files.py keeps
# them equal), checked against the release tarball's sha256. The CLI starts the engine of its own version
# (registry.dagger.io/engine:vVERSION) on first use, through the runner's Docker.
# Usage: install-dagger.sh BIN_DIR   (GitHub Actions: .github/actions/dagger; GitLab CI: the .dagger job)
set -euo pipefail
DAGGER_VERSION=0.21.8
# sha256 of dagger_v0.21.8_linux_amd64.tar.gz as published with the v0.21.8 release
DAGGER_SHA256_LINUX_AMD64=53e226c7da8fb75171e58c35759d736d961ce8b3a12db0baa7b7107954fccc5a

bin_dir=${1:?usage: install-dagger.sh BIN_DIR}
if [ "$(uname -sm)" != "Linux x86_64" ]; then
  echo "install-dagger.sh: only linux/amd64 is pinned here, not $(uname -sm)" >&2
  exit 1
fi
tarball="dagger_v${DAGGER_VERSION}_linux_amd64.tar.gz"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
curl -fsSL --retry 3 -o "$tmp/$tarball" \
  "https://github.com/dagger/dagger/releases/download/v${DAGGER_VERSION}/${tarball}"
echo "${DAGGER_SHA256_LINUX_AMD64}  $tmp/$tarball" | sha256sum -c -
tar -xzf "$tmp/$tarball" -C "$tmp" dagger
mkdir -p "$bin_dir"
install -m 0755 "$tmp/dagger" "$bin_dir/dagger"
"$bin_dir/dagger" version
