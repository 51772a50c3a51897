#!/bin/sh
# The Fashion-MNIST demo end to end on a 2000-image slice (test on the first 2000 test images):
# it must exit 0 and print a test accuracy well above chance (10%), and --resume must continue
# after the checkpointed epoch; then --mixed with --augment, and the vision transformer.
# Usage: test_train_demo.sh PATH/TO/train_fashion_mnist
set -u
prog=$1
data=${DS_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
if [ ! -r "$data/train-images-idx3-ubyte.gz" ]; then
  echo "SKIP: Fashion-MNIST not found in $data (Debian package dataset-fashion-mnist)"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; cat "$tmp/out"; exit 1; }

# 0. the transformer's hand-written backward pass agrees with finite differences
"$prog" --gradcheck > "$tmp/out" 2>&1 || fail "gradcheck exited $?"
grep -q '^gradcheck: .*: ok$' "$tmp/out" || fail "no gradcheck verdict"
grep '^gradcheck' "$tmp/out"

# 1. one epoch on 2000 images, with a checkpoint and a trace
"$prog" --data "$data" --limit 2000 --test-limit 2000 --epochs 1 --checkpoint "$tmp/ckpt" --trace "$tmp/t.json" \
  > "$tmp/out" 2>&1 || fail "first run exited $?"
acc=$(sed -n 's/^test accuracy \([0-9.]*\)%.*/\1/p' "$tmp/out")
[ -n "$acc" ] || fail "no test accuracy line"
awk -v a="$acc" 'BEGIN { exit !(a > 50) }' || fail "test accuracy $acc% is not above 50%"
grep -q '^epoch 1/1 .*train accuracy' "$tmp/out" || fail "no epoch line"
grep -q 'latency p50' "$tmp/out" || fail "no batcher latency line"
[ -s "$tmp/t.json" ] || fail "no trace file"
echo "first run: test accuracy $acc%"

# 2. --resume --epochs 2 continues at epoch 2 and trains only that epoch
"$prog" --data "$data" --limit 2000 --test-limit 2000 --epochs 2 --checkpoint "$tmp/ckpt" --resume \
  > "$tmp/out" 2>&1 || fail "resume run exited $?"
grep -q 'continuing at epoch 2' "$tmp/out" || fail "did not resume at epoch 2"
grep -q '^epoch 1/' "$tmp/out" && fail "resume ran epoch 1 again"
grep -q '^epoch 2/2 .*train accuracy' "$tmp/out" || fail "no epoch 2 line"
acc2=$(sed -n 's/^test accuracy \([0-9.]*\)%.*/\1/p' "$tmp/out")
awk -v a="$acc2" 'BEGIN { exit !(a > 50) }' || fail "resumed test accuracy '$acc2' is not above 50%"
echo "resumed run: test accuracy $acc2%"

# 3. --mixed: bf16 hidden layers under the DynamicPrecision policy still learn
"$prog" --data "$data" --limit 2000 --test-limit 2000 --epochs 1 --mixed --augment > "$tmp/out" 2>&1 || fail "mixed run exited $?"
grep -q 'fc1.w runs in bf16' "$tmp/out" || fail "mixed run did not use bf16"
grep -q '^precision: fc2.w in .* checks' "$tmp/out" || fail "no precision summary"
grep -q '^memory by dtype: f32 .* bf16 ' "$tmp/out" || fail "no bf16 in the memory-by-dtype line"
acc3=$(sed -n 's/^test accuracy \([0-9.]*\)%.*/\1/p' "$tmp/out")
awk -v a="$acc3" 'BEGIN { exit !(a > 50) }' || fail "mixed test accuracy '$acc3' is not above 50%"
echo "mixed run: test accuracy $acc3%"

# 4. the vision transformer under the seed's DynamicPrecision policy, with the loss scaler, a
#    checkpoint and resume, and the curves file of --plot (PNG only when gnuplot is installed)
"$prog" --data "$data" --model vit --depth 1 --limit 1000 --test-limit 500 --epochs 1 \
  --checkpoint "$tmp/vck" --plot "$tmp/curves.png" > "$tmp/out" 2>&1 || fail "vit run exited $?"
grep -q '^precision: attention runs in f16 (rule f16)' "$tmp/out" || fail "attention not in f16"
grep -q '^precision: ffn runs in f16 (rule f16)' "$tmp/out" || fail "ffn not in f16"
grep -q '^precision: embedding runs in .* (rule bf16)' "$tmp/out" || fail "embedding rule not bf16"
grep -q '^loss scaler: scale' "$tmp/out" || fail "no loss scaler line"
grep -q '^memory by dtype: f32 .* f16 ' "$tmp/out" || fail "no memory-by-dtype line with f16"
[ "$(wc -l < "$tmp/curves.png.csv")" -eq 2 ] || fail "curves csv does not have one epoch"
if command -v gnuplot > /dev/null 2>&1; then
  [ "$(head -c 4 "$tmp/curves.png" | od -An -c | tr -d ' ')" = '211PNG' ] || fail "no PNG plot written"
  echo "PNG plot written"
fi
acc4=$(sed -n 's/^test accuracy \([0-9.]*\)%.*/\1/p' "$tmp/out")
awk -v a="$acc4" 'BEGIN { exit !(a > 30) }' || fail "vit test accuracy '$acc4' is not above 30%"
echo "vit run: test accuracy $acc4%"
"$prog" --data "$data" --model vit --depth 1 --limit 1000 --test-limit 500 --epochs 2 \
  --checkpoint "$tmp/vck" --resume > "$tmp/out" 2>&1 || fail "vit resume exited $?"
grep -q 'continuing at epoch 2' "$tmp/out" || fail "vit did not resume at epoch 2"
echo "vit resumed at epoch 2"

# 5. a missing dataset is a clear error naming the package
"$prog" --data "$tmp/none" > "$tmp/out" 2>&1 && fail "missing data accepted"
grep -q 'dataset-fashion-mnist' "$tmp/out" || fail "missing-data message does not name the package"
echo "PASS"
