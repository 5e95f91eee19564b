#!/usr/bin/env bash
# Every check that needs a GPU, in one command, for a short session on a lent GPU machine:
#
#   tools/gpu_session.sh OUT_DIR [STEP ...]     steps (default: all, in this order; "STEP&" runs
#                                                 in the background, "wait" waits for those):
#     tests       the GPU-only unit tests (Triton kernels against SDPA, the T4 memory cap)
#     triton      python -m utils.bench flash_backward --sweep   (lesson 10's Triton backward)
#     throughput  python -m utils.bench throughput               (lesson 08's GPU table)
#     ddp         python -m utils.bench ddp                      (lesson 11's single-GPU figure)
#     notebooks   python -m course_tools gpu-check               (every notebook, GPU and T4)
#
# The benchmarks run first and alone, so that their timings see an idle GPU; the notebooks
# then share it. Logs, the gpu-check report and the executed notebooks (text outputs, in
# executed.tar.gz) go to OUT_DIR (at most 8 files). The Jupyter packages a bare GPU image
# lacks come as wheels: tools/gpu_wheels.sh fetches them into .whl/ here; carry `.whl`.
# Environment: SESSION_SECONDS (default 570) is the whole command's time: each step gets at
# most what is left, and the notebooks get `--deadline` from it, so that gpu-check starts no
# notebook it expects to end later (by the last report's times; see course_tools.gpu_schedule)
# and the command ends inside one 600 s device call with its report written. GPU_CHECK_ARGS
# adds arguments to gpu-check (e.g. "--lessons 05 10 --update"), GPU_CHECK_LIMIT caps its
# seconds; TESTS_ARGS replaces the test files (e.g. "-k backward FILE").
# Correctness steps may share the GPU ("notebooks& tests wait triton"); timings may not.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: tools/gpu_session.sh OUT_DIR [tests triton throughput ddp notebooks]}
shift
STEPS=${*:-tests triton throughput ddp notebooks}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg PYTHONPATH="$PWD:$PWD/instructor${PYTHONPATH:+:$PYTHONPATH}"

# The Jupyter packages, from the wheels tools/gpu_wheels.sh put in .whl/ (carried), where the
# image lacks them.
if ! python3 -c "import nbclient, ipykernel, nbval" 2>/dev/null; then
    compgen -G ".whl/*.whl" >/dev/null || { echo "no nbclient here: run tools/gpu_wheels.sh, carry .whl"; exit 1; }
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/machine.log"
python3 -c "import torch, triton; print('torch', torch.__version__, '| triton', triton.__version__)" \
    | tee -a "$OUT/machine.log"

END=$((SECONDS + ${SESSION_SECONDS:-570}))
left() { echo $((END - SECONDS)); }  # seconds left of SESSION_SECONDS

step() {  # step NAME SECONDS COMMAND...: run one step under a time limit (at most what is left),
          # into OUT/${LOG:-bench.log}
    local name=$1 limit=$2 log="$OUT/${LOG:-bench.log}"
    shift 2
    (( limit > $(left) - 5 )) && limit=$(( $(left) - 5 ))
    if (( limit < 15 )); then
        echo "=== $name: skipped, $(left) s left of SESSION_SECONDS" | tee -a "$log"
        return
    fi
    echo "=== $name ($(date +%T), at most ${limit} s): $*" | tee -a "$log"
    local start=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee -a "$log"
    echo "=== $name: exit ${PIPESTATUS[0]} after $((SECONDS - start)) s" | tee -a "$log"
}

run_step() {
    case $1 in
        tests) step tests "${TESTS_LIMIT:-100}" python3 -m pytest -o addopts="" -p no:cacheprovider -q \
                   ${TESTS_ARGS:-tests/test_triton_attention.py tests/test_runtime.py} ;;
        triton) step triton 150 python3 -m utils.bench flash_backward --sweep --json "$OUT/flash_backward.json" ;;
        throughput) step throughput 120 python3 -m utils.bench throughput ;;
        ddp) step ddp 120 python3 -m utils.bench ddp ;;
        notebooks)
            # --update merges into the committed report: start from its rows
            [[ " ${GPU_CHECK_ARGS:-} " == *" --update "* ]] && cp docs/gpu_check.json "$OUT/"
            local limit=$(( ${GPU_CHECK_LIMIT:-100000} < $(left) - 10 ? ${GPU_CHECK_LIMIT:-100000} : $(left) - 10 ))
            LOG=notebooks.log step notebooks "$limit" python3 -m course_tools.gpu_check \
                --out "$OUT/gpu_check.md" --keep "$OUT/executed" --deadline $((limit - 20)) ${GPU_CHECK_ARGS:-}
            tar -czf "$OUT/executed.tar.gz" -C "$OUT" executed && rm -rf "$OUT/executed" ;;
        *) echo "unknown step $1" >&2; exit 2 ;;
    esac
}

for s in $STEPS; do
    case $s in
        wait) wait ;;  # until the steps started with & have finished
        *'&') run_step "${s%&}" & ;;  # e.g. "notebooks&": in the background, beside the next steps
        *) run_step "$s" ;;
    esac
done
wait
