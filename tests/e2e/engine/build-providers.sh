#!/usr/bin/env bash
# Build the Pulumi resource plugins the dev stack needs, pulumi-resource-docker
# and pulumi-resource-random, from Go modules only (Go module proxy; nothing
# from GitHub or get.pulumi.com).
#
#   tests/e2e/engine/build-providers.sh OUT_DIR [PULUMI_HOME]
#
# With PULUMI_HOME, each plugin is also installed where the engine's plugin
# cache lookup finds it without any download:
#   $PULUMI_HOME/plugins/resource-<name>-v<version>/pulumi-resource-<name>
# (Alternatively put OUT_DIR on PATH: the engine then uses the "ambient"
# plugin but warns "using pulumi-resource-<name> from $PATH" on every run.)
#
# Each plugin is our own small wrapper module (provider-docker/,
# provider-random/) around the upstream Terraform provider and
# pulumi-terraform-bridge. Per plugin:
#   1. build pulumi-tfgen-<name> and run it: schema.json + bridge-metadata.json
#      go to cmd/plugin/generated/ (git-ignored; go:embed needs
#      them inside the module);
#   2. build pulumi-resource-<name>, embedding them, into OUT_DIR.
# The plugin reports the version of the PyPI SDK pinned in requirements.txt:
# the SDK asks the engine for exactly that plugin version.
#
# Idempotent; Go caches stay default (~/go/pkg/mod, ~/.cache/go-build), so a
# second run only relinks.
set -euo pipefail

out_dir=${1:?usage: $0 OUT_DIR [PULUMI_HOME]}
pulumi_home=${2:-}
mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$here/../../.." && pwd)

# The exact SDK version pinned in requirements.txt, e.g. "pulumi-docker==5.2.0" -> 5.2.0.
pinned_version() {
    local version
    version=$(sed -n "s/^$1==\([0-9][0-9.]*\)\s*\(#.*\)\?$/\1/p" "$repo_root/requirements.txt")
    if [[ -z $version ]]; then
        echo "requirements.txt must pin $1 exactly ($1==X.Y.Z): the plugin reports that version" >&2
        exit 1
    fi
    echo "$version"
}

# build NAME VERSION [go build flags...]
build() {
    local name=$1 version=$2
    shift 2
    local module="$here/provider-$name"
    local generated="$module/cmd/plugin/generated"
    local ldflags="-s -w -X main.version=$version"
    local tmp
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' RETURN

    echo "==> $name $version: tfgen"
    (cd "$module" && go build "$@" -ldflags "$ldflags" -o "$tmp/pulumi-tfgen-$name" "./cmd/tfgen")
    # Docs and examples are only for SDK generation; the runtime needs the schema's shape.
    mkdir -p "$generated"
    "$tmp/pulumi-tfgen-$name" schema --out "$tmp/schema" --skip-docs --skip-examples --quiet >/dev/null
    for file in schema.json bridge-metadata.json; do
        # Rewrite only on change, so an unchanged schema keeps the Go build cache warm.
        cmp -s "$tmp/schema/$file" "$generated/$file" || cp "$tmp/schema/$file" "$generated/$file"
    done

    echo "==> $name $version: pulumi-resource-$name"
    (cd "$module" && go build "$@" -ldflags "$ldflags" -o "$out_dir/pulumi-resource-$name" "./cmd/plugin")

    if [[ -n $pulumi_home ]]; then
        local cache="$pulumi_home/plugins/resource-$name-v$version"
        mkdir -p "$cache"
        cmp -s "$out_dir/pulumi-resource-$name" "$cache/pulumi-resource-$name" ||
            cp "$out_dir/pulumi-resource-$name" "$cache/pulumi-resource-$name"
        echo "    installed in $cache"
    fi
}

# no_compose: leave out upstream's docker_compose resource (we do not bridge
# its Plugin Framework half; it only adds build time).
build docker "$(pinned_version pulumi-docker)" -tags no_compose
build random "$(pinned_version pulumi-random)"
echo "==> plugins in $out_dir"
