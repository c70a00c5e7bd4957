#!/usr/bin/env bash
# Builds the Hearth container image with buildah, FROM scratch, without any registry: the same
# layout as packaging/Dockerfile (binary, CA bundle, non-root user 65532, volume, port,
# healthcheck), made from a binary built here.
#
#   packaging/build-image.sh [--binary PATH] [--tag NAME]
#
# The binary: --binary PATH if given (CI passes the dist build it already made for the .deb);
# else a static musl dist build if the x86_64-unknown-linux-musl target and musl-gcc are
# installed; else the glibc dist build, copied together with the shared libraries and dynamic
# loader that ldd lists for it.
set -euo pipefail
cd "$(dirname "$0")/.."

binary=""
tag="localhost/hearth:latest"
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    --tag) tag="$2"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "build-image.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

need() { command -v "$1" >/dev/null || { echo "build-image.sh: $1 is missing; apt-get install $2" >&2; exit 1; }; }
need buildah buildah
need ldd libc-bin
[ -f /etc/ssl/certs/ca-certificates.crt ] || { echo "build-image.sh: no CA bundle; apt-get install ca-certificates" >&2; exit 1; }

target_dir="${CARGO_TARGET_DIR:-target}"
if [ -z "$binary" ]; then
  if rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl && command -v musl-gcc >/dev/null; then
    echo "== building a static musl binary"
    cargo build --profile dist --locked --target x86_64-unknown-linux-musl
    binary="$target_dir/x86_64-unknown-linux-musl/dist/hearth"
  else
    echo "== musl target or musl-gcc not installed: building the glibc binary and shipping its libraries"
    cargo build --profile dist --locked
    binary="$target_dir/dist/hearth"
  fi
fi
[ -x "$binary" ] || { echo "build-image.sh: $binary is not an executable" >&2; exit 1; }

ctx="$(mktemp -d /tmp/hearth-image.XXXXXX)"
trap 'rm -rf "$ctx"' EXIT
root="$ctx/rootfs"
mkdir -p "$root/usr/bin" "$root/etc/ssl/certs" "$root/tmp" "$ctx/data"
install -m 0755 "$binary" "$root/usr/bin/hearth"
chmod 1777 "$root/tmp"

# A dynamically linked binary brings its libraries and loader, at the paths ldd shows, which are
# the paths the loader searches by default. A static one needs nothing.
libs="$(ldd "$binary" 2>/dev/null | grep -o '/[^ ]*' | sort -u || true)"
if [ -n "$libs" ]; then
  for lib in $libs; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  echo "== dynamic binary: shipping $(echo "$libs" | wc -l) libraries and the loader: $(tr "\n" " " <<<"$libs")"
else
  echo "== static binary"
fi

cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/sbin/nologin\nhearth:x:65532:65532:Hearth:/var/lib/hearth:/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\nhearth:x:65532:\n' >"$root/etc/group"

cat >"$ctx/Containerfile" <<'EOF'
FROM scratch
COPY rootfs/ /
COPY --chown=65532:65532 data/ /var/lib/hearth/
USER 65532:65532
ENV PATH=/usr/bin \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    HEARTH_IN_CONTAINER=1 \
    HEARTH_SERVER__LISTEN=0.0.0.0:8080 \
    HEARTH_STORAGE__DATA_DIR=/var/lib/hearth
WORKDIR /var/lib/hearth
VOLUME /var/lib/hearth
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 CMD ["hearth", "healthcheck"]
ENTRYPOINT ["/usr/bin/hearth"]
CMD ["serve"]
EOF
chmod 0700 "$ctx/data"

echo "== buildah bud -> $tag"
# docker format keeps HEALTHCHECK (the OCI image format has no field for it). No RUN steps, so
# the isolation mode only matters on hosts where the default one does not work.
buildah bud --isolation chroot --format docker --layers=false -t "$tag" -f "$ctx/Containerfile" "$ctx"
buildah images --format '{{.Name}}:{{.Tag}} {{.Size}}' "$tag"
