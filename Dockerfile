# Build: docker build -t registry.example.com/rayrec:0.1.0 .    Push it, then set the same name in
# `images:` of k8s/overlays/*/kustomization.yaml and `docker.image` of cluster/aws-gpu.yaml.
#
# The rayrec image: the official Ray image of the Ray and Python that rayrec pins (Ray 2.60.0,
# Python 3.11, CUDA), plus rayrec and jobs/. torch comes from the default index: its CUDA build,
# not the CPU pin of constraints-cpu.txt (which is not copied in).
FROM rayproject/ray:2.60.0-py311-gpu

# The base image runs as user ray (uid 1000, group users = 100), as the manifests expect.
WORKDIR /home/ray/rayrec
COPY --chown=1000:100 pyproject.toml README.md ./
COPY --chown=1000:100 rayrec ./rayrec
RUN pip install --no-cache-dir . \
    && python -c "import ray, rayrec; assert ray.__version__ == '2.60.0', ray.__version__"
# RayJob entrypoints run `python jobs/...` from this directory (the containers' workingDir).
COPY --chown=1000:100 jobs ./jobs
# the Musical Instruments reviews of the main job (rayrec.data.real looks in ./data)
COPY --chown=1000:100 data ./data
USER 1000
