#!/bin/sh
# Regenerates deploy/requirements.lock, the exact dependencies the container image installs,
# from pyproject.toml: the runtime dependencies (not the `dev` and `local` extras) and the build
# backend, every one pinned with `==` and the sha256 of each of its files on PyPI.
#
#   deploy/lock.sh                               # keep the pins that still satisfy pyproject.toml
#   deploy/lock.sh --upgrade                     # take the newest allowed releases
#   deploy/lock.sh --upgrade-package fastapi     # move one dependency
#
# The lock is resolved by pip-tools under Python 3.11 on Linux, as in the image (deploy/Dockerfile),
# since environment markers depend on both. pip-tools is installed into a throwaway virtual
# environment, so nothing of the project's own needs it. pip's configuration files and
# find-links are ignored, so every pin and hash comes from the index alone (PIP_INDEX_URL, a
# mirror of PyPI, is honoured, and never written into the lock).
set -eu

PYTHON=${PYTHON:-python3.11}
PIP_TOOLS_VERSION=7.7.0
PIP_VERSION=26.3

cd "$(dirname "$0")/.."

"$PYTHON" - <<'EOF'
import sys

if sys.version_info[:2] != (3, 11) or sys.platform != "linux":
    sys.exit(f"deploy/lock.sh: needs Python 3.11 on Linux, as in the image; this is Python "
             f"{sys.version_info.major}.{sys.version_info.minor} on {sys.platform} "
             "(set PYTHON to another interpreter)")
EOF

tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
"$PYTHON" -m venv "$tools"
"$tools/bin/pip" install --quiet --disable-pip-version-check \
    "pip==$PIP_VERSION" "pip-tools==$PIP_TOOLS_VERSION"

env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_CONSTRAINT -u PIP_NO_INDEX \
    PIP_CONFIG_FILE=/dev/null CUSTOM_COMPILE_COMMAND=deploy/lock.sh \
    "$tools/bin/pip-compile" \
    --quiet \
    --generate-hashes \
    --allow-unsafe \
    --build-deps-for=wheel \
    --strip-extras \
    --no-emit-index-url \
    --no-emit-find-links \
    --output-file deploy/requirements.lock \
    "$@" \
    pyproject.toml
