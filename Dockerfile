# One image for every Parcours service. The default command runs the gateway; compose and
# the Kubernetes manifests override it with `python -m services.<name>` (or the init step).
#
#   docker build -t parcours:local .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app

WORKDIR /app

# Dependencies first, in their own layer, so that a code change does not reinstall them.
# They come from pyproject.toml itself: one list of pins, no requirements.txt to drift.
# Every pinned dependency ships a manylinux wheel for CPython 3.11: no compiler needed.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Only what runs: no .venv, no .run (local data), no tests.
COPY shared ./shared
COPY services ./services
RUN pip install --no-deps . && rm -rf build ./*.egg-info

# The services run from /app's source tree (PYTHONPATH above); Faust's datadir defaults to
# /app/.run/faust (PARCOURS_FAUST_DATADIR), writable by the service user.
RUN useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin parcours \
    && mkdir -p /app/.run \
    && chown parcours:parcours /app/.run
USER 10001

EXPOSE 8000
CMD ["python", "-m", "services.gateway"]
