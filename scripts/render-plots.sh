#!/usr/bin/env bash
# Renders every SVG the benchmark wrote (bench-out/ by default, or the
# directory given) to a PNG beside it, to look at before trusting a plot.
# Needs rsvg-convert (Debian/Ubuntu: apt-get install librsvg2-bin; macOS:
# brew install librsvg) or resvg (cargo install resvg).
set -euo pipefail
dir="${1:-bench-out}"
if command -v rsvg-convert >/dev/null; then
    render() { rsvg-convert --background-color=white "$1" -o "$2"; }
elif command -v resvg >/dev/null; then
    render() { resvg --background white "$1" "$2"; }
else
    echo "render-plots: neither rsvg-convert nor resvg on PATH (apt-get install librsvg2-bin, or cargo install resvg)" >&2
    exit 1
fi
shopt -s nullglob
svgs=("$dir"/*.svg)
if [ ${#svgs[@]} -eq 0 ]; then
    echo "render-plots: no SVG in $dir (run: cargo run --release -p gearshift-bench -- run)" >&2
    exit 1
fi
for svg in "${svgs[@]}"; do
    render "$svg" "${svg%.svg}.png"
    echo "${svg%.svg}.png"
done
