# syntax=docker/dockerfile:1
# The project's two images (see README.md, "Images"):
#   docker buildx build --target operator  -t <registry>/siem-operator:0.1.0 .   the operator (the chart's image)
#   docker buildx build --target functions -t <registry>/siem-functions:0.1.0 .  the pipeline's one functions image
# Both run as the non-root user 65532 and write nowhere but /tmp. The emulators (ocisim, kubesim) are test
# code and never enter an image: .dockerignore keeps emulator/ out of the build context, so the wheel built
# here holds siem_operator and siem_pipeline only (tests/test_dockerfile.py builds it the same way).
#
# Base images are pinned by tag. For reproducible releases pin them by digest too, here, e.g.
#   --build-arg PYTHON_IMAGE=python:3.11-slim-trixie@sha256:<digest>
# (`docker buildx imagetools inspect <image>` prints the digest). The Fn images must stay the ones
# functions/*/func.yaml name as build_image and run_image.
ARG PYTHON_IMAGE=python:3.11-slim-trixie
ARG FN_BUILD_IMAGE=fnproject/python:3.11-dev
ARG FN_RUN_IMAGE=fnproject/python:3.11

# --- wheel: the operator's wheel (pure Python: SIEM_PURE_PYTHON leaves out the compiled redaction lane, which
# only the functions use), built from the sources alone ---------------------------------------------------------
FROM ${PYTHON_IMAGE} AS wheel
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 SIEM_PURE_PYTHON=1
WORKDIR /src
COPY pyproject.toml setup.py README.md constraints.txt ./
COPY operator/siem_operator/ operator/siem_operator/
COPY functions/siem_pipeline/ functions/siem_pipeline/
RUN python -m pip wheel --no-deps -w /wheels .

# --- functions-build: the Fn build image (it has the C compiler) builds the package with its compiled redaction
# lane (siem_pipeline._credlane) and installs it and the FDK into /python, as `fn build` does; the build fails
# if the lane was not compiled -------------------------------------------------------------------------------------
FROM ${FN_BUILD_IMAGE} AS functions-build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml setup.py README.md constraints.txt ./
COPY operator/siem_operator/ operator/siem_operator/
COPY functions/siem_pipeline/ functions/siem_pipeline/
RUN pip3 wheel --no-deps -w /wheels . \
    && whl="$(echo /wheels/oci_siem_operator-*.whl)" \
    && pip3 install --target /python -c constraints.txt fdk "${whl}" \
    && PYTHONPATH=/python python3 -c "import siem_pipeline._credlane" \
    && rm -f /python/bin/ocisim /python/bin/kubesim \
    && chmod -R o+rX /python

# --- functions: fanout, fetch and export in one image; SIEM_FUNCTION (set by the operator) picks one ---------
FROM ${FN_RUN_IMAGE} AS functions
LABEL org.opencontainers.image.title="siem-functions" \
      org.opencontainers.image.description="The SIEM pipeline's functions: fanout, fetch, export (oci-siem-operator)" \
      org.opencontainers.image.licenses="Apache-2.0"
WORKDIR /function
COPY --from=functions-build /python /python
COPY functions/dispatch/ /function/
ENV PYTHONPATH=/function:/python \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp
USER 65532:65532
# The entrypoint of functions/*/func.yaml: the FDK serves func.py's handler on the socket Fn gives it.
ENTRYPOINT ["/python/bin/fdk", "/function/func.py", "handler"]

# --- operator-venv: the operator's virtual environment, every dependency pinned by constraints.txt -----------
FROM ${PYTHON_IMAGE} AS operator-venv
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY constraints.txt /tmp/constraints.txt
COPY --from=wheel /wheels /wheels
# No pip in the venv (nothing installs at run time); the console scripts of the emulators, which are not in
# the wheel, are removed.
RUN python -m venv --without-pip /opt/venv \
    && whl="$(echo /wheels/oci_siem_operator-*.whl)" \
    && python -m pip --python /opt/venv/bin/python install -c /tmp/constraints.txt "${whl}[operator]" \
    && rm -f /opt/venv/bin/ocisim /opt/venv/bin/kubesim \
    && /opt/venv/bin/siem-operator run --help >/dev/null

# --- operator: kopf with its liveness endpoint (8080) and Prometheus metrics (9090) -------------------------
FROM ${PYTHON_IMAGE} AS operator
LABEL org.opencontainers.image.title="siem-operator" \
      org.opencontainers.image.description="The SiemPipeline operator (oci-siem-operator)" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=operator-venv /opt/venv /opt/venv
# The root filesystem may be read-only (the chart makes it so): no bytecode is written, and HOME and
# temporary files are under /tmp (an emptyDir in the chart).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp
WORKDIR /tmp
USER 65532:65532
EXPOSE 8080 9090
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
# The chart sets the same command and its own args (namespaces, ports, log level).
ENTRYPOINT ["siem-operator"]
CMD ["run"]
