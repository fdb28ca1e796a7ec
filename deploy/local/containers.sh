# Shared by the container scripts (sourced after common.sh): podman as this machine runs it,
# and a Debian 12 base image made locally when no registry is reachable.
#
# podman (Debian 12's 4.3) runs here as root with runc and cgroupfs (crun refuses hybrid
# cgroups) and without default rlimits (they cannot be set in this sandbox); the settings
# are in a containers.conf of our own, pointed at by CONTAINERS_CONF.
BASE_IMAGE="${DBQ_BASE_IMAGE:-localhost/debian:bookworm-slim}"

containers_prepare() {
  local missing=()
  for tool in podman runc debootstrap podman-compose; do command -v "$tool" >/dev/null || missing+=("$tool"); done
  if [ "${#missing[@]}" -gt 0 ]; then
    say "installing: ${missing[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman runc debootstrap podman-compose >/dev/null \
      || die "apt-get could not install podman, runc, debootstrap and podman-compose"
  fi
  mkdir -p "$DBQ_DEV/containers"
  cat > "$DBQ_DEV/containers/containers.conf" <<'CONF'
[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
  export CONTAINERS_CONF="$DBQ_DEV/containers/containers.conf"
  if ! podman image exists "$BASE_IMAGE"; then
    local mirror root
    mirror="$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)"
    mirror="${mirror:-http://deb.debian.org/debian}"
    root="$DBQ_DEV/containers/root"
    rm -rf "$root"
    say "making the Debian 12 base image $BASE_IMAGE (debootstrap --variant=minbase bookworm from $mirror)"
    debootstrap --variant=minbase bookworm "$root" "$mirror" > "$DBQ_DEV/containers/debootstrap.log" 2>&1 \
      || die "debootstrap failed (log: $DBQ_DEV/containers/debootstrap.log)"
    # As debian:bookworm-slim: no package cache, lists, documentation or locales.
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/*
    find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} + 2>/dev/null || true
    cat > "$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
CFG
    tar -C "$root" -cf "$DBQ_DEV/containers/base.tar" .
    podman import "$DBQ_DEV/containers/base.tar" "$BASE_IMAGE" >/dev/null || die "podman import of the base image failed"
    rm -rf "$root" "$DBQ_DEV/containers/base.tar"
  fi
}
