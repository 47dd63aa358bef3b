#!/usr/bin/env bash
# Run every bundled example config and leave the outputs under out/examples/NAME/.
# Usage: scripts/run_examples.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-out/examples}"
for cfg in configs/bass.toml configs/flagship.toml configs/clinicians_stochastic.toml; do
  name=$(basename "$cfg" .toml)
  echo "== $cfg"
  spreadjax simulate "$cfg" --out "$out/$name"
done
echo "== configs/medical_innovation.toml (calibration)"
spreadjax calibrate configs/medical_innovation.toml --out "$out/medical_innovation"
