#!/usr/bin/env bash
# Installs what dbq needs to build, test and run on Debian 12: the C libraries, the
# servers (PostgreSQL, Redis), the zstd tool, moto (an S3-compatible server) from PyPI, and
# for the tests of the operations recipes a headless Chromium with Selenium (the dashboard
# is tested in a real browser), systemd's tools (systemd-analyze verify of the units) and
# Prometheus's promtool (the alert rules checked and unit-tested; no server is started).
# Installs only what is missing; safe to run again.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

packages=(redis-server redis-tools libhiredis-dev libpq-dev libcurl4-openssl-dev libzstd-dev zlib1g-dev
          postgresql postgresql-client postgresql-contrib zstd libxml2 curl ca-certificates python3 python3-pip python3-venv time
          libpg-query-dev postgresql-15-hypopg libssl-dev
          chromium chromium-driver python3-selenium systemd prometheus python3-aiosmtpd)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "installing ${missing[*]} needs root (run as root or with sudo)"
  say "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v swift >/dev/null || die "swift is not on PATH: install Swift 6.2 or newer (https://swift.org/install)"

# moto[server] gives moto_server; boto3 comes with it and sets up the S3 user.
if ! command -v moto_server >/dev/null || ! python3 -c 'import boto3, flask_cors' 2>/dev/null; then
  say "installing moto[server] from PyPI"
  python3 -m pip install -q 'moto[server]' boto3 2>/dev/null \
    || python3 -m pip install -q --break-system-packages 'moto[server]' boto3
  hash -r
fi
command -v moto_server >/dev/null || die "moto_server is not on PATH after installing moto[server]; add pip's bin directory to PATH"

# The Kubernetes manifests are checked against the API's schemas (kubernetes-validate).
if ! command -v kubernetes-validate >/dev/null; then
  say "installing kubernetes-validate from PyPI"
  python3 -m pip install -q kubernetes-validate 2>/dev/null || python3 -m pip install -q --break-system-packages kubernetes-validate
  hash -r
fi
command -v kubernetes-validate >/dev/null || die "kubernetes-validate is not on PATH after installing it; add pip's bin directory to PATH"
say "install: everything dbq needs is present"
