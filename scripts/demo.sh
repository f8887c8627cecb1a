#!/usr/bin/env bash
# The main job: split inference with a salted Fashion-MNIST LeNet.
#
#   1. installs the Debian packages (scripts/install-deps.sh) and builds the
#      `salted` program;
#   2. starts the tail server (`salted serve`) on a free loopback port in its
#      own process and waits for /healthz;
#   3. for every image in examples/images: the true label (from the file
#      name), what the server would conclude from the logits it computes
#      (their arg-max, without the salt) and the label the client gets after
#      de-salting (`salted client`: head + salt on the device, tail on the
#      server);
#   4. evaluates the 10,000 Fashion-MNIST test images (`salted eval`):
#      standard model accuracy, salted model accuracy, server-view accuracy;
#   5. stops the server (also on error or Ctrl-C).
#
# Models: models/lenet_fmnist_std.salted and the salted model in models/
# (the other *.salted there), written by
# tools/weights_import/train_fashion_mnist.py (docs/TRAINING.md).
# Environment: SALTED_JOBS (build jobs, 2), SALTED_BUILD_DIR (build),
# SALTED_DEMO_SALTED (a salted model other than the one found in models/),
# SALTED_DEMO_CUT (cut to split at; default the first safe one).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
jobs="${SALTED_JOBS:-2}"
build="${SALTED_BUILD_DIR:-$root/build}"
py=/usr/bin/python3
data=/usr/share/datasets/fashion-mnist
names=(t-shirt/top trouser pullover dress coat sandal shirt sneaker bag "ankle boot")

say() { echo "demo: $*"; }
die() { echo "demo: error: $*" >&2; exit 1; }

bash "$root/scripts/install-deps.sh"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" --target salted_cli --parallel "$jobs"
bin="$build/salted"

# --- models
std="$root/models/lenet_fmnist_std.salted"
salted_model="${SALTED_DEMO_SALTED:-}"
if [[ -z "$salted_model" ]]; then
  for f in "$root"/models/*.salted; do
    [[ -e "$f" && "$f" != "$std" ]] && { salted_model="$f"; break; }
  done
fi
if [[ ! -f "$std" || -z "$salted_model" || ! -f "$salted_model" ]]; then
  die "the trained models are missing: need models/lenet_fmnist_std.salted and a salted model in models/" \
      "(found: $(cd "$root" && ls models/*.salted 2>/dev/null | tr '\n' ' ')); train them with" \
      "/usr/bin/python3 tools/weights_import/train_fashion_mnist.py (docs/TRAINING.md)"
fi
"$bin" info "$salted_model" --json >/dev/null || die "$salted_model does not load"

# --- the cut: given, or the first one where the salt is mixed in (safe)
cut="${SALTED_DEMO_CUT:-$("$bin" info "$salted_model" --json | "$py" -c '
import json, sys
cuts = [c for c in json.load(sys.stdin)["cuts"] if c["safe"] and not c["tail_needs_salt"]]
print(cuts[0]["id"] if cuts else "")')}"
[[ -n "$cut" ]] || die "$salted_model has no safe cut"

# --- the server, in its own process; stopped on any exit
tmp="$(mktemp -d)"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    say "server stopped"
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$bin" serve "$salted_model" --cut "$cut" --listen 127.0.0.1:0 >"$tmp/server.out" 2>"$tmp/server.log" &
server_pid=$!
url=""
for _ in $(seq 100); do  # port 0: the server picks a free port and prints it
  url="$(sed -n 's/^listening on //p' "$tmp/server.out")"
  [[ -n "$url" ]] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$tmp/server.log" >&2; die "the server did not start"; }
  sleep 0.1
done
[[ -n "$url" ]] || die "the server did not announce its address"
health="$("$py" -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1] + "/healthz", timeout=5).read().decode().strip())' "$url")" \
  || die "$url/healthz did not answer"
say "tail server at $url ($health)"
say "model $(basename "$salted_model") split at cut $cut: the head and the salt stay here, the tail runs on the server"
echo

# --- sample images: true label, server's view, client's de-salted label
shopt -s nullglob
images=("$root"/examples/images/*.png)
[[ ${#images[@]} -gt 0 ]] || die "no sample images in examples/images"
inputs=()
for img in "${images[@]}"; do inputs+=(--input "$img"); done
"$bin" client "$salted_model" --cut "$cut" --server "$url" "${inputs[@]}" --server-view >"$tmp/client.out" \
  || die "the client failed"
printf '%-26s %-14s %-24s %-14s\n' "image" "true label" "server view (no salt)" "client (de-salted)"
ok=0 seen_ok=0
while IFS= read -r line; do
  path="${line%%: label *}"
  rest="${line#*: label }"
  label="${rest%%,*}"
  view="${rest##*server view }"
  file="$(basename "$path" .png)"
  truth="${file##*_}"
  [[ "$label" == "$truth" ]] && ok=$((ok + 1))
  [[ "$view" == "$truth" ]] && seen_ok=$((seen_ok + 1))
  printf '%-26s %-14s %-24s %-14s\n' "$file.png" "$truth ${names[$truth]}" "$view ${names[$view]}" \
    "$label ${names[$label]}$([[ "$label" == "$truth" ]] && echo "" || echo " (wrong)")"
done <"$tmp/client.out"
say "${#images[@]} images: client correct on $ok, server's guess correct on $seen_ok"
echo

# --- the test set
if [[ ! -e "$data/t10k-images-idx3-ubyte.gz" && ! -e "$data/t10k-images-idx3-ubyte" ]]; then
  say "installing dataset-fashion-mnist"
  if [[ $(id -u) -eq 0 ]]; then apt-get install -y dataset-fashion-mnist; else sudo apt-get install -y dataset-fashion-mnist; fi \
    || die "could not install dataset-fashion-mnist (IDX files under $data)"
fi
say "evaluating the 10,000 Fashion-MNIST test images"
"$bin" eval "$std" --data "$data" --json >"$tmp/std.json"
"$bin" eval "$salted_model" --data "$data" --json >"$tmp/salted.json"
"$py" - "$tmp/std.json" "$tmp/salted.json" <<'PY'
import json, sys
std, sal = (json.load(open(p)) for p in sys.argv[1:3])
print(f"  standard model accuracy:            {100 * std['accuracy']:6.2f}%  ({std['images_per_second']:.0f} images/s)")
print(f"  salted model accuracy (de-salted):  {100 * sal['accuracy']:6.2f}%  ({sal['images_per_second']:.0f} images/s)")
print(f"  server-view accuracy (no salt):     {100 * sal['server_view_accuracy']:6.2f}%  (chance is 10%)")
PY
