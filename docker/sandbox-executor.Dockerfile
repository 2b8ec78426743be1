# The sandbox executor image: any Debian-like image with python3, plus the stdlib-only executor and its siblings.
# The docker backend mounts the executor file itself, so the plain base image works too; this image is for
# running the executor without the resrl source at hand (set RESRL_SANDBOX_IMAGE to its tag).
#   docker build -f docker/sandbox-executor.Dockerfile --build-arg BASE_IMAGE=resrl/base:bookworm \
#       -t resrl/sandbox-executor .
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}
COPY resrl/sandbox/executor.py resrl/sandbox/harness.py resrl/sandbox/isolation.py resrl/sandbox/spawn.py \
     resrl/sandbox/verdicts.py resrl/sandbox/tester.py resrl/sandbox/cleanup.py resrl/sandbox/options.py /opt/resrl/
RUN python3 -I /opt/resrl/executor.py --help >/dev/null
CMD ["python3", "-I", "/opt/resrl/executor.py", "--socket", "/run/resrl/executor.sock"]
