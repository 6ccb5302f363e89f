# The image of `turngym serve --docker`: the sandbox image (so the tool envs' commands, run in this
# container, see what a sandbox sees) plus a virtualenv at /opt/turngym with turngym and what serving
# needs. Built without network by turngym.serve.docker.build_serve_image, which puts into the context
# (on the host): wheels/ (requirements.txt at the host's versions, for this image's Python; pip's own
# wheel in wheels/pip/, to install them where no pip is) and turngym/ (the package, copied from the
# source the host runs). Not a plain `Dockerfile`: `turngym sandbox build` builds it through that function.
ARG BASE=turngym/sandbox:latest
FROM ${BASE}
COPY wheels/ /tmp/wheels/
COPY requirements.txt constraints.txt /tmp/wheels/
RUN set -e; python3 -m venv --without-pip /opt/turngym; pip=$(echo /tmp/wheels/pip/pip-*.whl)/pip; \
    /opt/turngym/bin/python $pip install --quiet --no-index --no-cache-dir --disable-pip-version-check \
      --find-links /tmp/wheels -r /tmp/wheels/requirements.txt -c /tmp/wheels/constraints.txt; \
    rm -rf /tmp/wheels
# last, so a change of the source rebuilds only this layer
COPY turngym/ /opt/turngym/src/turngym/
RUN echo /opt/turngym/src > "$(/opt/turngym/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/turngym-src.pth" \
 && /opt/turngym/bin/python -m compileall -q /opt/turngym/src \
 && /opt/turngym/bin/python -c 'import turngym.serve.server, turngym.sandboxes.local'
ARG SOURCE=""
ENV PYTHONDONTWRITEBYTECODE=1
LABEL turngym.image=serve turngym.source=${SOURCE}
