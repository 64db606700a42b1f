# The image a Ray cluster runs the job in (KubeRay, the cluster launcher, or
# `docker run` for a one-node try). Ray's own image provides Python and Ray;
# this adds the job and its dependencies, pinned by pyproject.toml.
#
#   docker build -t dedupe-at-scale:0.1.0 .
FROM rayproject/ray:2.60.0-py311-cpu

# fasttext is built from source: it needs a compiler.
USER root
RUN apt-get update && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
USER ray

WORKDIR /home/ray/dedupe-at-scale
COPY --chown=ray:users pyproject.toml README.md ./
COPY --chown=ray:users src ./src
COPY --chown=ray:users jobs ./jobs
RUN pip install --no-cache-dir . \
    && python -c "import dedupe_at_scale, fasttext; assert hasattr(fasttext, 'train_supervised')"
# numba's kernels compiled into the image, so that a node's workers load them
# instead of each compiling them on its first job. numba's cache is per CPU
# model: the cluster configs compile again at node start for the node's own
# (a portable target would cost MinHash 1.4-2.8x, docs/performance.md).
RUN dedupe-at-scale compile

# The bundled language-ID model ships inside the package (CC BY-SA 3.0, see
# src/dedupe_at_scale/models/NOTICE.md); nothing is downloaded at run time.
ENTRYPOINT []
CMD ["dedupe-at-scale", "--help"]
