#!/bin/bash
# Packs what a bare GPU machine (no datasets, no internet) needs to run a notebook at `reduced` scale, in folders
# small enough for transfers limited to 64 MiB: CIFAR-10 as xz-compressed published pickles in .devA/.devB/.devC
# (about 47 MB each, md5 sums beside them) and the Jupyter wheels the machine lacks in .whl (cp312, manylinux).
# Run from the repository root; add /.devA/ /.devB/ /.devC/ /.whl/ to .git/info/exclude.
set -euo pipefail
src=data/cifar-10-batches-py
mkdir -p .devA .devB .devC .whl
for f in data_batch_1 data_batch_2; do xz -6 -T2 -c "$src/$f" > ".devA/$f.xz"; done
for f in data_batch_3 data_batch_4; do xz -6 -T2 -c "$src/$f" > ".devB/$f.xz"; done
for f in data_batch_5 test_batch; do xz -6 -T2 -c "$src/$f" > ".devC/$f.xz"; done
cp "$src/batches.meta" .devC/
md5sum "$src"/* > .devC/MD5SUMS
cp benchmarks/gpu/run_notebook.sh .devC/run.sh
for p in ipykernel ipython jupyter_client jupyter_core nbclient nbformat traitlets pyzmq tornado comm \
         matplotlib-inline nest_asyncio decorator pexpect ptyprocess prompt_toolkit wcwidth stack_data executing \
         asttokens pure_eval fastjsonschema jsonschema jsonschema-specifications referencing rpds-py platformdirs \
         ipython_pygments_lexers; do
  python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform any -d .whl "$p"
done
du -sh .devA .devB .devC .whl
