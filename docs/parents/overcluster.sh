#!/usr/bin/env bash
# More parent codes than families (N_P' of 6 or 12 where the demo has 4), merged afterwards by
# docs/parents/parent_readout.py. The committed trainer refuses an --n_parent other than the data's, so this
# trains a copy of the committed tree (git archive HEAD) with docs/parents/overcluster.patch applied, which
# drops that one check and changes nothing else; the copy's probe.sh appends its line to the copy's probes.jsonl.
# The copy is made once per OUT_DIR (OUT_DIR/code_overcluster) and reused; remove it to train a newer HEAD.
# usage: docs/parents/overcluster.sh OUT_DIR NAME --n_parent=N [--FLAG=VALUE ...]
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=$1 NAME=$2
shift 2
CODE="$OUT/code_overcluster"
if [[ ! -d "$CODE" ]]; then
  mkdir -p "$CODE"
  git archive HEAD | tar -x -C "$CODE"
  patch -d "$CODE" -p1 < docs/parents/overcluster.patch
fi
"$CODE/docs/parents/probe.sh" "$OUT" "$NAME" "$@"
