#!/bin/bash
# runs one notebook at reduced scale on the GPU machine: CIFAR-10 from the carried chunks, Jupyter from wheels
set -eo pipefail
NB=$1; COMMIT=$2
if [ ! -f data/cifar-10-batches-py/test_batch ]; then
  mkdir -p data/cifar-10-batches-py
  for f in .devA/*.xz .devB/*.xz .devC/*.xz; do xz -dc "$f" > "data/cifar-10-batches-py/$(basename "$f" .xz)" & done; wait
  cp .devC/batches.meta data/cifar-10-batches-py/
  md5sum -c .devC/MD5SUMS
fi
[ -d /tmp/site ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PATH=/tmp/site/bin:$PATH KDLAB_PROGRESS=0 KDLAB_SCALE=reduced PYTHONUNBUFFERED=1 KDLAB_SOURCE_COMMIT=$COMMIT
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
start=$(date +%s)
python3 /tmp/site/bin/jupyter-execute --inplace "notebooks/$NB" 2>&1 | grep -v "TCP without encryption" || true
echo "notebook $NB: $(( $(date +%s) - start )) s wall"
[ -z "${OUT:-}" ] || cp "notebooks/$NB" "$OUT/"
