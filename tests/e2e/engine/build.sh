#!/usr/bin/env bash
# Build the pinned Pulumi engine from Go modules into OUT (default: .tools/bin), and the provider
# plugins into OUT/../plugins (off PATH: the engine would prefer them there whatever their version,
# with a warning on every run; the tests install them into PULUMI_HOME's plugin cache instead):
#   pulumi                          the CLI (github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
#   pulumi-language-python          the Python language host
#   pulumi-language-python-exec     the host's program runner (a file of the sdk/v3 module)
#   pulumi-resource-pulumi-python   the dynamic-provider launcher (a file of the sdk/v3 module)
#   pulumi-resource-docker, pulumi-resource-random   the provider plugins (build-providers.sh)
#
# Idempotent and cached: Go's module and build caches persist between runs, and nothing is
# rebuilt while the stamp (a hash of this folder's sources and the Go version) is unchanged.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
out=${1:-$repo/.tools/bin}
# shellcheck source=pins.conf
source "$here/pins.conf"

command -v go >/dev/null || { echo "engine: Go is required (https://go.dev/dl/, or the distribution's golang package)" >&2; exit 1; }

# Only tracked-style sources count: generated schemas and build output are excluded by name.
stamp_of() {
  (cd "$here" && find . -type f ! -path '*/generated/*' ! -name '*.log' -print0 | sort -z | xargs -0 sha256sum
   go version) | sha256sum | cut -d' ' -f1
}
want=$(stamp_of)
stamp_file="$out/.engine-stamp"
plugins="$(dirname "$out")/plugins"
binaries=(pulumi pulumi-language-python pulumi-language-python-exec pulumi-resource-pulumi-python
          ../plugins/pulumi-resource-docker ../plugins/pulumi-resource-random)
if [[ -f "$stamp_file" && "$(cat "$stamp_file")" == "$want" ]]; then
  missing=0
  for binary in "${binaries[@]}"; do [[ -x "$out/$binary" ]] || missing=1; done
  if ((missing == 0)); then
    echo "engine: up to date in $out (pulumi v$PULUMI_VERSION)"
    exit 0
  fi
fi

mkdir -p "$out"
rm -f "$stamp_file"  # a failed build below must not leave a stamp that claims success
export GOFLAGS="${GOFLAGS:-} -mod=readonly -trimpath"
version_var=github.com/pulumi/pulumi/sdk/v3/go/common/version.Version

timed() {
  local label=$1 started=$SECONDS
  shift
  "$@"
  echo "engine: $label took $((SECONDS - started))s"
}

build_cli() {
  (cd "$here/pulumi" && go build -o "$out/pulumi" -ldflags "-X $version_var=v$PULUMI_VERSION" \
    github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
}

build_language_host() {
  (cd "$here/language-python" && go build -o "$out/pulumi-language-python" \
    -ldflags "-X $version_var=v$LANGUAGE_HOST_VERSION" \
    github.com/pulumi/pulumi/sdk/v3/python/cmd/pulumi-language-python)
  # The two helper scripts ship inside the sdk/v3 module at the CLI's version.
  local sdk
  sdk=$(cd "$here/pulumi" && go mod download github.com/pulumi/pulumi/sdk/v3 \
        && go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)
  [[ -d "$sdk" ]] || { echo "engine: could not download github.com/pulumi/pulumi/sdk/v3@v$PULUMI_VERSION" >&2; return 1; }
  install -m 0755 "$sdk/python/cmd/pulumi-language-python-exec" "$out/pulumi-language-python-exec"
  install -m 0755 "$sdk/python/dist/pulumi-resource-pulumi-python" "$out/pulumi-resource-pulumi-python"
}

started=$SECONDS
timed "the pulumi CLI v$PULUMI_VERSION" build_cli
timed "the Python language host v$LANGUAGE_HOST_VERSION" build_language_host
timed "the provider plugins" "$here/build-providers.sh" "$plugins"
echo "$want" >"$stamp_file"
echo "engine: built in $((SECONDS - started))s into $out"
