#!/usr/bin/env bash
# The wheels a bare GPU image lacks for tools/gpu_session.sh, fetched here into .whl/ (ignored
# by git): the Jupyter packages that run a notebook (nbclient, ipykernel and what they need),
# for the image's Python 3.12 on x86-64. Those the image already has (PyTorch's, pytest's) are
# left out: a second copy of one would shadow it. Name `.whl` in the device call's `carry`;
# gpu_session.sh installs them into /tmp/site. About 15 MiB; run it once per checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
NEEDED="nbclient nbformat jupyter_client ipykernel ipywidgets nbval"  # nbval: the root conftest imports it
# In the GPU image already (its package list, 2026-11-17): keep the image's own copies.
IN_IMAGE="attrs coverage packaging psutil pygments python_dateutil six typing_extensions"
rm -rf .whl && mkdir .whl
python3 -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 --platform any -d .whl $NEEDED
for name in $IN_IMAGE; do
    rm -f .whl/"$name"-*.whl
done
ls .whl
du -sh .whl
