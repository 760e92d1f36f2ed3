#!/usr/bin/env bash
# The GPU checks of issue 32 in one go, on a CUDA machine: the CUDA test module (tests/test_cuda.py: every
# command, the tour, the Python API, torchrun with NCCL, the captured SVI step) and the VAE speed benchmark
# (experiments/bench_vae_speed.py --device cuda, batch 128 and 1024).
#
#   experiments/gpu_check.sh [OUT]        # OUT default: runs/gpu_check
#
# Runs from a plain checkout (PYTHONPATH points at it; no pip install needed). Writes OUT/info.log,
# OUT/test_cuda.log (+ test_cuda.xml), OUT/bench_vae_speed.log (+ .json) and prints each part's wall time.
# Exit status: 0 when every part passed; 1 when one failed; 2 when torch sees no GPU (nothing is run:
# the test module would only skip).
set -u

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-runs/gpu_check}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
py="${PYTHON:-python3}"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
if [ -z "${PROBGEN_DATA_DIR:-}" ] && [ -d "$root/../shared/data" ]; then  # the shared data beside the checkout
    export PROBGEN_DATA_DIR="$root/../shared/data"
fi
cd "$root" || exit 1

failed=0
# part NAME COMMAND...: run it with its output in OUT/NAME.log; one line with its status and wall time
part() {
    local name=$1 t0 ms rc
    shift
    t0=$(date +%s%N)
    "$@" >"$out/$name.log" 2>&1
    rc=$?
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    printf '%-16s %-6s %6d.%01d s wall   %s\n' "$name" "$([ $rc -eq 0 ] && echo ok || echo FAILED)" \
        $((ms / 1000)) $((ms % 1000 / 100)) "$out/$name.log"
    [ $rc -eq 0 ] || failed=1
    return $rc
}

if ! part info "$py" -c "import torch, probgen; print('probgen', probgen.__version__, 'torch', torch.__version__); \
assert torch.cuda.is_available(), 'torch sees no CUDA device'; print('device', torch.cuda.get_device_name(0))"; then
    echo "gpu_check: no CUDA device (see $out/info.log); nothing run" >&2
    exit 2
fi
tail -n 2 "$out/info.log"
part test_cuda "$py" -m pytest -q -p no:cacheprovider tests/test_cuda.py --junitxml "$out/test_cuda.xml"
tail -n 1 "$out/test_cuda.log"
part bench_vae_speed "$py" experiments/bench_vae_speed.py --device cuda --batch-sizes 128,1024 \
    --out "$out/bench_vae_speed.json"
tail -n 12 "$out/bench_vae_speed.log"
exit $failed
