# Build: docker build -t registry.example.com/rayrec:0.1.0 .    Push it, then set the same name in
# `images:` of k8s/overlays/*/kustomization.yaml and `docker.image` of cluster/aws-gpu.yaml.
#
# The rayrec image: the official Ray image of the Ray and Python that rayrec pins (Ray 2.60.0,
# Python 3.11, CUDA), plus rayrec and jobs/. torch comes from the default index: its CUDA build,
# not the CPU pin of constraints-cpu.txt (which is not copied in). Pin the base image by digest
# too once you have pulled it (FROM rayproject/ray:2.60.0-py311-gpu@sha256:...).
FROM rayproject/ray:2.60.0-py311-gpu

# The base image runs as user ray (uid 1000, group users = 100), as the manifests expect.
WORKDIR /home/ray/rayrec
# Dependencies: exactly those of requirements.lock (`make lock`, tools/lock.py), each checked
# against its recorded sha256 (--require-hashes: an unpinned or unhashed one fails the build);
# then rayrec itself from the build context, without resolving anything (--no-deps).
COPY --chown=1000:100 requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock
COPY --chown=1000:100 pyproject.toml README.md ./
COPY --chown=1000:100 rayrec ./rayrec
RUN pip install --no-cache-dir --no-deps --no-build-isolation . \
    && python -c "import ray, rayrec; assert ray.__version__ == '2.60.0', ray.__version__"
# RayJob entrypoints run `python jobs/...` from this directory (the containers' workingDir).
COPY --chown=1000:100 jobs ./jobs
# the Musical Instruments reviews of the main job (rayrec.data.real looks in ./data)
COPY --chown=1000:100 data ./data
USER 1000
