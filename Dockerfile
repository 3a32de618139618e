# GAN Lab classroom image: JupyterLab with gan_course, the labs, the datasets and the
# course's model weights baked in, on the Jupyter Docker Stacks TensorFlow image.
#
#   docker build -t gan-lab .                                       # students, CPU
#   docker build --build-arg BASE_VARIANT=cuda- -t gan-lab:cuda .    # the lab's GPU server
#   docker build --build-arg INCLUDE_SOLUTIONS=true -t gan-lab:instructor .
#   docker run -p 8888:8888 gan-lab        # then open the printed URL (it carries the token)
#
# The base image's entrypoint (tini + start.sh), start-notebook command, health check and
# token authentication are inherited unchanged; the image runs as the unprivileged jovyan.

# A dated tag pins Python 3.13, TensorFlow 2.21.0 and JupyterLab 4.6; the CUDA build of
# the same date is the "cuda-" variant.
ARG BASE_IMAGE=quay.io/jupyter/tensorflow-notebook
ARG BASE_TAG=2026-09-01
ARG BASE_VARIANT=""
# "true" copies the reference solutions into the image (instructors only).
ARG INCLUDE_SOLUTIONS=false

FROM ${BASE_IMAGE}:${BASE_VARIANT}${BASE_TAG} AS base

# The solutions live in a stage of their own: the student image copies from the empty one,
# so the answers are in none of its layers (deleting them after a COPY would leave them in
# the layer underneath, readable by anyone who saves the image).
FROM base AS solutions-false
RUN mkdir -p /tmp/course-extra

FROM base AS solutions-true
COPY --chown=${NB_UID}:${NB_GID} solutions/ /tmp/course-extra/solutions/

# A stage of this file, chosen by INCLUDE_SOLUTIONS, not an image to tag.
# hadolint ignore=DL3006
FROM solutions-${INCLUDE_SOLUTIONS} AS solutions

FROM base

ARG BASE_IMAGE
ARG BASE_TAG
ARG BASE_VARIANT
ARG INCLUDE_SOLUTIONS
# Versions the base image must carry; the build stops if it does not (tests/test_dockerfile.py
# keeps them in step with pyproject.toml).
ARG EXPECTED_PYTHON=3.13
ARG EXPECTED_TENSORFLOW=2.21
ARG EXPECTED_KERAS=3.15
# The pretrained BigGAN-deep for lab 06, cached into TFHUB_CACHE_DIR; empty to leave it out.
ARG BIGGAN_MODULE=https://tfhub.dev/deepmind/biggan-deep-128/1
# A campus mirror (`gan-course mirror DIR` served over HTTP), tried before the public sources
# while the image is built and, kept in the image, by every student's kernel.
ARG GAN_COURSE_MIRRORS=""
ARG TENSORFLOW_HUB_VERSION=0.16.1
# The classifier behind the course's sample-quality metrics, trained once per profile and
# dataset and cached with the data (gan_course.metrics.load_classifier); empty to skip.
ARG CLASSIFIER_PROFILES="cpu gpu"
ARG CLASSIFIER_DATASETS="mnist fashion_mnist"

LABEL org.opencontainers.image.title="GAN Lab" \
      org.opencontainers.image.description="JupyterLab notebooks and the gan_course library for teaching generative adversarial networks" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="${BASE_IMAGE}:${BASE_VARIANT}${BASE_TAG}" \
      gan-lab.solutions="${INCLUDE_SOLUTIONS}"

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Everything the course caches lives under /opt/gan-lab, owned by the notebook user so a
# lab can still fetch a dataset left out of the image (CelebA) at run time.
ENV GAN_COURSE_HOME=/opt/gan-lab \
    GAN_COURSE_MIRRORS=${GAN_COURSE_MIRRORS}
ENV GAN_COURSE_DATA=${GAN_COURSE_HOME}/data \
    TFHUB_CACHE_DIR=${GAN_COURSE_HOME}/tfhub

# User names and ids as the base image's own Dockerfiles use them (NB_UID is 1000).
# hadolint ignore=DL3066
USER root
# A CJK font, so that the Chinese edition's figures draw their titles and labels instead of
# boxes (gan_course.plotting picks it up; `gan-course doctor` reports it).
# hadolint ignore=DL3008
RUN apt-get update --yes && \
    apt-get install --yes --no-install-recommends fonts-noto-cjk && \
    apt-get clean && rm -rf /var/lib/apt/lists/*
RUN mkdir -p "${GAN_COURSE_DATA}" "${TFHUB_CACHE_DIR}" && \
    chown -R "${NB_UID}:${NB_GID}" "${GAN_COURSE_HOME}"
# hadolint ignore=DL3066
USER ${NB_UID}

# The library first: it changes less often than the notebooks, so the heavy layers below
# (data, weights) are reused when only a lab changes.  TensorFlow comes with the base
# image (the CPU or the CUDA build): installing the package without an extra keeps it, and
# the check stops the build when the base image carries other versions than the course's.
COPY --chown=${NB_UID}:${NB_GID} pyproject.toml README.md /tmp/gan-course/
COPY --chown=${NB_UID}:${NB_GID} gan_course/ /tmp/gan-course/gan_course/
# JupyterLab's own interface in Chinese is one setting away (Settings > Language).
ARG LANGUAGE_PACK_VERSION=4.5.post3
RUN pip install --no-cache-dir /tmp/gan-course "jupyterlab-language-pack-zh-CN==${LANGUAGE_PACK_VERSION}" && \
    rm -rf /tmp/gan-course && \
    python -c "import sys, tensorflow as tf, keras; \
v = {'Python': '.'.join(map(str, sys.version_info[:2])), 'TensorFlow': tf.__version__, 'Keras': keras.__version__}; \
want = {'Python': '${EXPECTED_PYTHON}', 'TensorFlow': '${EXPECTED_TENSORFLOW}', 'Keras': '${EXPECTED_KERAS}'}; \
bad = [f'{k} {v[k]} (expected {want[k]})' for k in want if not (v[k] + '.').startswith(want[k] + '.')]; \
sys.exit('base image drifted: ' + ', '.join(bad)) if bad else print(v)" && \
    fix-permissions "${CONDA_DIR}" && \
    fix-permissions "/home/${NB_USER}"

# Data and weights baked in: a class of students must not all download them at 9 a.m.
RUN gan-course download mnist fashion_mnist && \
    for profile in ${CLASSIFIER_PROFILES}; do \
        GAN_COURSE_PROFILE="${profile}" python -c "import sys; from gan_course import metrics; \
[metrics.load_classifier(name) for name in sys.argv[1:]]" ${CLASSIFIER_DATASETS} || exit 1; \
    done && \
    if [ -n "${BIGGAN_MODULE}" ]; then \
        pip install --no-cache-dir "tensorflow-hub==${TENSORFLOW_HUB_VERSION}" "tf-keras==${EXPECTED_TENSORFLOW}.*" && \
        python -c "import sys; from gan_course import hub; hub.load_hub_module(sys.argv[1], download=True)" "${BIGGAN_MODULE}"; \
    fi && \
    fix-permissions "${GAN_COURSE_HOME}" && \
    fix-permissions "${CONDA_DIR}"

# The labs: a pristine copy under /opt (a JupyterHub postStart hook copies it into each
# user's persistent home) and a working copy in the home for a plain `docker run`.
COPY --chown=${NB_UID}:${NB_GID} labs/ ${GAN_COURSE_HOME}/labs/
COPY --chown=${NB_UID}:${NB_GID} labs/ /home/${NB_USER}/labs/
COPY --from=solutions --chown=${NB_UID}:${NB_GID} /tmp/course-extra/ /home/${NB_USER}/
RUN fix-permissions "/home/${NB_USER}" && \
    fix-permissions "${GAN_COURSE_HOME}"

WORKDIR /home/${NB_USER}
# hadolint ignore=DL3066
USER ${NB_UID}
EXPOSE 8888
