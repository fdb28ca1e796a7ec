#!/usr/bin/env bash
# Builds dbq for release the way the demo, the benches and the container ship it, and
# prints the binary's path on standard output (the build's own output goes to stderr).
#
# An idle worker's memory is almost all clean pages of its binary, not data: the kernel
# maps 64 KiB around every first touch, and the code a worker runs from start to idle is
# scattered across 27 MiB of text. So this build
#   - links the Swift runtime and Foundation in (--static-swift-stdlib): one binary to
#     map, no start-up relocations across libraries;
#   - links with lld and packs relative relocations (DT_RELR, glibc 2.36 or newer):
#     1.1 MiB of relocation records read at start become 0.3 MiB;
#   - puts every Swift and C function in a section of its own, and places first the
#     functions a worker runs from start to idle (deploy/worker.order, made by
#     deploy/local/order-file.sh): their pages are together instead of spread;
#   - exports no symbols of its own (the static runtime's link arguments ask for
#     --export-dynamic, for programs that load Swift plugins; dbq loads none): 2.7 MiB of
#     dynamic symbol tables no longer mapped in at start.
# Idle worker RSS on Debian 12: 41 MiB built plainly, 24-25 MiB built here.
# It builds in .build-release, not .build: SwiftPM does not compile again what a plain
# `swift build -c release` left there when only the code generation flags differ.
# Extra arguments go to swift build.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
flags=(
  -c release --product dbq --scratch-path "$root/.build-release" --static-swift-stdlib
  -Xswiftc -use-ld=lld -Xlinker -z -Xlinker pack-relative-relocs
  -Xswiftc -Xfrontend -Xswiftc -function-sections -Xcc -ffunction-sections
  -Xlinker "--symbol-ordering-file=$root/deploy/worker.order" -Xlinker --no-warn-symbol-ordering
  -Xlinker --no-export-dynamic
)
bin="$(swift build -c release --scratch-path "$root/.build-release" --show-bin-path "$@")"
# The order file is no input SwiftPM knows of: without the binary it links again.
[ "$root/deploy/worker.order" -ot "$bin/dbq" ] || rm -f "$bin/dbq"
swift build "${flags[@]}" "$@" >&2
printf '%s/dbq\n' "$bin"
