# syntax=docker/dockerfile:1
#
# ssdns container image.
#   docker build -t ssdns:latest .
#   kind load docker-image ssdns:latest   # or push, then set `images:` in k8s/kustomization.yaml
#
# Two stages on the same base, python:3.12-slim unless --build-arg BASE=... says otherwise
# (CI builds on a stand-in made from Debian's packages: see .ci/image). The builder fetches every
# dependency exactly as requirements/image.txt locks it, each file checked against its sha256, and
# builds ssdns's own wheel with the build backend requirements/build.txt locks (refresh both with
# `bash .ci/lock`). The final stage installs those wheels from /wheels with --no-index, so it needs
# no network access and no compiler, and the wheels themselves never become an image layer
# (BuildKit bind mount).

ARG BASE=python:3.12-slim

FROM ${BASE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
# The locks before the source, so that a change to ssdns alone reuses the dependency layer.
COPY requirements/ ./requirements/
# Hash-checking mode: a file whose sha256 is not in the lock, or a dependency the lock lacks, fails the build.
RUN pip install --require-hashes -r requirements/build.txt \
 && pip wheel --require-hashes -r requirements/image.txt -w /wheels
COPY pyproject.toml README.md ./
COPY ssdns/ ./ssdns/
# No build isolation: the backend is the locked one installed above, and nothing unlocked is fetched.
RUN pip wheel --no-deps --no-build-isolation . -w /wheels

FROM ${BASE}
ARG BASE
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="ssdns" \
      org.opencontainers.image.description="Checks a StatefulSet's headless Service DNS, per-pod DNS names, SRV/PTR, per-pod HTTP identity, and cross-checks the Kubernetes API" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${BASE}"
# No .pyc writes at runtime (the root filesystem is read-only in k8s/; pip byte-compiles what it
# installs, and the standard library is compiled below) and unbuffered logs for `kubectl logs`.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# Unpinned on purpose: --no-index means it can only come from the locked wheels above, and the
# extras must be the ones .ci/lock resolves (tests/test_image_lock.py checks).
# hadolint ignore=DL3013
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels "ssdns[kube,metrics,junit,fast]"
# The standard library's bytecode. python:3.12-slim ships none (the official image deletes every .pyc), and
# with PYTHONDONTWRITEBYTECODE and a read-only root none is ever written: every run compiled each stdlib
# module it imported, ~0.6 s of CPU of a 3-pod DNS-only check's ~0.8 s (bench/startup.py, its shape "as
# python:3.12-slim ships"). Compiled once here, as pip compiled the packages above: ~11 MB, without the
# GUI, 2to3 and test parts. A base that has it already (CI's Debian stand-in) keeps its own.
RUN python -m compileall -q -j 0 -x '/(idlelib|tkinter|turtledemo|lib2to3|test|tests|ensurepip|pydoc_data)/' \
      "$(python -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')"
# Numeric, so that Kubernetes runAsNonRoot can verify it without /etc/passwd.
# Must equal runAsUser/runAsGroup in k8s/ (tests/test_manifests.py checks this).
USER 65532:65532
ENTRYPOINT ["ssdns"]
CMD ["--help"]
