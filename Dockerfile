# syntax=docker/dockerfile:1.7
# SPDX-License-Identifier: Apache-2.0
#
# Every zgserve image, built from one file with one target per image:
#
#   docker build --target gateway        -t zgserve/gateway .
#   docker build --target billing        -t zgserve/billing .
#   docker build --target chain-indexer  -t zgserve/chain-indexer .
#   docker build --target sample-backend -t zgserve/sample-backend .
#   docker build --target prover         -t zgserve/prover .        # CPU: snarkjs + arkworks
#   docker build --target prover-cuda    -t zgserve/prover-cuda .   # CUDA base, for GPU nodes
#   docker build --target devnet         -t zgserve/devnet .        # anvil + zg-devnet (dev only)
#
# Bases are pinned to exact tags (replace them with digests in a registry you control: see
# docs/operations.md). Python packages come only from the lock (requirements/*.txt, made by
# scripts/lock.sh), every file checked against its sha256 (--require-hashes); the project is
# built by the locked setuptools (--no-build-isolation). Images run as the unprivileged user
# 10001 and hold no keys: those are files mounted at run time (/run/secrets).
#
# The project is installed in editable mode under /app: the prover finds its circuit keys, the
# compiled witness generator and snarkjs relative to the source tree (zg_shared.zk.snarkjs).

ARG PYTHON_IMAGE=docker.io/library/python:3.11.13-slim-bookworm
ARG NODE_IMAGE=docker.io/library/node:20.19.4-bookworm-slim
ARG CUDA_IMAGE=docker.io/nvidia/cuda:12.6.3-runtime-ubuntu24.04

# ---------------------------------------------------------------- JavaScript tools (lockfile)
FROM ${NODE_IMAGE} AS npm-tools
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts --loglevel=error

# Only snarkjs (and what it needs) stays for the prover's runtime: the versions still come
# from package-lock.json.
FROM npm-tools AS prover-js
RUN npm uninstall --no-audit --no-fund --ignore-scripts --loglevel=error \
      @foundry-rs/anvil-linux-amd64 @openzeppelin/contracts circom2 circomlib circomlibjs solc \
 && test -f node_modules/snarkjs/build/cli.cjs

# ---------------------------------------------------------------- Python virtual environment
FROM ${PYTHON_IMAGE} AS python-build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
# The C fast path needs Python's headers: python:*-slim has them, Debian's python3 does not.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev $(python -c \
      'import os, sysconfig; print("" if os.path.exists(sysconfig.get_path("include") + "/Python.h") else "libpython3-dev")') \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
# Dependencies first (their layer survives source edits), from the hash-checked lock.
COPY requirements/runtime.txt requirements/prover.txt requirements/
RUN pip install --require-hashes -r requirements/runtime.txt
COPY pyproject.toml setup.py README.md ./
COPY shared/ shared/
COPY services/ services/
COPY sdk/ sdk/
# Editable: the C fast path (zg_shared.crypto._fast) is compiled in place, under /app.
RUN pip install --no-deps --no-build-isolation -e . \
 && python -c "import zg_shared.crypto._fast, zg_gateway, zg_prover, zg_sample_backend"

FROM python-build AS python-build-prover
RUN pip install --require-hashes -r requirements/prover.txt

# ---------------------------------------------------------------- runtime images
FROM ${PYTHON_IMAGE} AS runtime-base
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 zg \
 && useradd --system --uid 10001 --gid zg --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin zg
WORKDIR /app

FROM runtime-base AS service
COPY --from=python-build /opt/venv /opt/venv
COPY --from=python-build /app /app
USER 10001:10001

FROM service AS gateway
EXPOSE 3080
CMD ["zg-gateway"]

FROM service AS billing
EXPOSE 9101
CMD ["zg-billing"]

FROM service AS chain-indexer
EXPOSE 9103
CMD ["zg-chain-indexer"]

FROM service AS sample-backend
EXPOSE 8000
CMD ["zg-sample-backend", "--host", "0.0.0.0"]

# The prover runs snarkjs (the witness, and proofs without arkworks) under the distribution's
# Node.js: one package for every Debian or Ubuntu base (the official node binary is not
# portable between them).
FROM runtime-base AS node-runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin

# The circuit's witness generators (wasm, and circom's C++ one built with g++/libgmp), compiled
# by the pinned circom for every circuit size whose keys are committed (circuits/keys/
# settle_batch_N), into the zk cache (zg_shared.zk.circuit); the C++ sources are dropped.
FROM node-runtime AS zk-build
RUN apt-get update \
 && apt-get install -y --no-install-recommends g++ make libgmp-dev nlohmann-json3-dev nasm \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
ENV ZG_ZK_CACHE=/app/.cache/zk
COPY --from=python-build-prover /opt/venv /opt/venv
COPY --from=python-build-prover /app /app
COPY --from=npm-tools /app/node_modules/ node_modules/
COPY circuits/ circuits/
COPY scripts/zk_setup.py scripts/compile_contracts.py scripts/
COPY contracts/src/interfaces/ contracts/src/interfaces/
RUN for keys in circuits/keys/settle_batch_*; do \
      n=${keys##*_}; \
      python scripts/zk_setup.py --size "$n" --compile-only \
        && test -n "$(ls .cache/zk/settle_batch_$n/*/witness)" || exit 1; \
    done \
 && find .cache/zk -name '*_cpp' -prune -exec rm -rf {} +

# DEV keys for larger N (compose's zk-dev-keys job): `zk_setup.py --size N --arkworks-dev`
# into $ZG_ZK_CACHE, a volume the prover and the deploy job mount. Never for real funds.
FROM zk-build AS zk-keys
CMD ["python", "scripts/zk_setup.py", "--size", "64", "--arkworks-dev", "--verifier-artifact"]

# CPU prover: snarkjs under node, and arkworks (groth16py) when the backend setting asks for it.
FROM node-runtime AS prover
COPY --from=python-build-prover /opt/venv /opt/venv
COPY --from=python-build-prover /app /app
COPY --from=prover-js /app/node_modules/ /app/node_modules/
RUN apt-get update && apt-get install -y --no-install-recommends libgmp10 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
# The compiled circuit is found by the fingerprint of its sources (zg_shared.zk.circuit).
ENV ZG_ZK_CACHE=/app/.cache/zk
COPY --from=zk-build /app/.cache/zk/ /app/.cache/zk/
COPY --from=npm-tools /app/node_modules/circomlib/package.json /app/node_modules/circomlib/
COPY circuits/ /app/circuits/
USER 10001:10001
EXPOSE 9102
CMD ["zg-prover"]

# Local chain for compose: anvil (pinned by package-lock.json) and the deploy job's tools.
FROM runtime-base AS devnet
COPY --from=python-build /opt/venv /opt/venv
COPY --from=python-build /app /app
COPY --from=npm-tools /app/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil /usr/local/bin/anvil
COPY deploy/compose/deploy_contracts.py deploy/compose/make_secrets.py /app/deploy/compose/
# To find a size's DEV keys and verifier in the zk-dev-keys volume (zg_shared.zk.circuit).
COPY --from=npm-tools /app/node_modules/circomlib/package.json /app/node_modules/circomlib/
COPY circuits/ /app/circuits/
RUN mkdir -p /var/lib/anvil && chown 10001:10001 /var/lib/anvil
USER 10001:10001
EXPOSE 8545
CMD ["anvil", "--host", "0.0.0.0", "--port", "8545"]

# ---------------------------------------------------------------- CUDA prover
# Same prover on NVIDIA's CUDA runtime (Ubuntu 24.04, Python 3.12): the image a GPU node pulls.
# It runs the CPU backends until a GPU backend ships (docs/prover.md); the GPU is handed in by
# the NVIDIA container toolkit (Kubernetes: the nvidia.com/gpu resource).
FROM ${CUDA_IMAGE} AS cuda-base
ENV DEBIAN_FRONTEND=noninteractive PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates nodejs libgmp10 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 zg \
 && useradd --system --uid 10001 --gid zg --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin zg
WORKDIR /app

FROM cuda-base AS python-build-cuda
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-dev gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
COPY requirements/prover.txt requirements/
RUN pip install --require-hashes -r requirements/prover.txt
COPY pyproject.toml setup.py README.md ./
COPY shared/ shared/
COPY services/ services/
COPY sdk/ sdk/
RUN pip install --no-deps --no-build-isolation -e . \
 && python -c "import zg_shared.crypto._fast, zg_prover, groth16py"

FROM cuda-base AS prover-cuda
ENV NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility
COPY --from=python-build-cuda /opt/venv /opt/venv
COPY --from=python-build-cuda /app /app
COPY --from=prover-js /app/node_modules/ /app/node_modules/
ENV ZG_ZK_CACHE=/app/.cache/zk
COPY --from=zk-build /app/.cache/zk/ /app/.cache/zk/
COPY --from=npm-tools /app/node_modules/circomlib/package.json /app/node_modules/circomlib/
COPY circuits/ /app/circuits/
USER 10001:10001
EXPOSE 9102
CMD ["zg-prover"]

# The default target (a plain `docker build .`) is the gateway.
FROM gateway
