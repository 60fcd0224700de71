#!/usr/bin/env bash
# Installs whatever the local stack is missing, and nothing twice:
#   - the Python virtualenv (.venv) with the pinned dependencies of pyproject.toml
#   - the Kafka broker's jars, from Maven Central with mvn, cached outside git
#   - PostgreSQL 15, Java 17 and Maven from Debian packages
#   - with PARCOURS_BROWSER=1, Chromium and chromium-driver (the browser tests)
# A second run takes about a second.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
CACHE="${PARCOURS_CACHE:-$HOME/.cache/parcours}"

say() { printf '[install] %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# --- system packages -------------------------------------------------------------------
PG_BIN="/usr/lib/postgresql/15/bin"
if [ ! -x "$PG_BIN/initdb" ]; then say "installing PostgreSQL 15 (Debian packages)"; apt_install postgresql-15; fi
command -v java >/dev/null || { say "installing Java 17"; apt_install openjdk-17-jre-headless; }
command -v mvn >/dev/null || { say "installing Maven"; apt_install maven; }
# Chromium and its driver only when asked (make test-browser): about 165 MB, 500 MB on disk
if [ "${PARCOURS_BROWSER:-0}" = 1 ] && ! { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; }; then
  say "installing chromium and chromium-driver (Debian packages, for make test-browser)"
  apt_install chromium chromium-driver
fi
python3 -c 'import venv, ensurepip' 2>/dev/null || { say "installing python3-venv"; apt_install python3-venv; }

# --- Python virtualenv -----------------------------------------------------------------
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  say "creating the virtualenv and installing pinned dependencies"
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[dev]'
  rm -f .venv/.installed-*
  touch "$stamp"
else
  say "virtualenv up to date"
fi

# --- Kafka jars ------------------------------------------------------------------------
KAFKA_LIB="$CACHE/kafka-$(sha256sum deploy/kafka/pom.xml | cut -c1-16)/lib"
if [ ! -f "$KAFKA_LIB/.complete" ]; then
  say "fetching Kafka jars with mvn into $KAFKA_LIB"
  rm -rf "$KAFKA_LIB"
  mvn -B -q -f deploy/kafka/pom.xml dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIB"
  touch "$KAFKA_LIB/.complete"
else
  say "Kafka jars present"
fi
mkdir -p .run
printf '%s\n' "$KAFKA_LIB" > .run/kafka-lib
say "done"
