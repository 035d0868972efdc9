#!/usr/bin/env bash
# Runs the steps of the CI templates (ci-templates/) locally, in a temporary git clone:
# validate, alert-rule tests, policy tests, the plan against the previous commit, and
# prints the comment the pull-request job would post.
#
#   scripts/ci-local.sh [SPEC_DIR]        SPEC_DIR inside the repository (default: examples/webapp)
#
#   CI_LOCAL_REPO   the repository to clone (default: this checkout; its committed HEAD)
#   CI_LOCAL_BASE   the commit to plan against (default: HEAD~1, the previous commit)
#   CI_LOCAL_STATE  the state store the plan compares with (default: a new, empty one)
#   CAPSTAN         the capstan program (default: this checkout's bin/capstan)
#
# Commands that are not in this build of Capstan are left out or replaced, and the
# script says so: `capstan policy test`, `capstan plan --base/--offline` and
# `capstan plan --format markdown`.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
spec=${1:-examples/webapp}
repo=${CI_LOCAL_REPO:-$root}
base=${CI_LOCAL_BASE:-HEAD~1}
program=${CAPSTAN:-$root/bin/capstan}
capstan() { node "$program" "$@"; }
step() { printf '\n== %s\n' "$*"; }

work=$(mktemp -d "${TMPDIR:-/tmp}/capstan-ci-local-XXXXXX")
trap 'rm -rf "$work"' EXIT
git clone -q "$repo" "$work/repo"
cd "$work/repo"
base_sha=$(git rev-parse --verify -q "$base^{commit}") || { echo "ci-local: no commit $base in $repo" >&2; exit 1; }
echo "ci-local: $(git rev-parse --short HEAD) against $base ($(git rev-parse --short "$base_sha")), spec $spec, in a clone at $work/repo"
export NO_COLOR=1

step "capstan validate $spec"
capstan validate "$spec"

step "capstan test $spec"
capstan test "$spec"

step "capstan policy test $spec"
if ! capstan policy test --help 2>&1 | grep -q '^Usage: capstan policy test'; then
  echo "ci-local: skipped: this capstan has no \`policy test\` command"
elif ! grep -rqsE --include='*.yaml' --include='*.yml' '^kind:[[:space:]]*PolicyTest' "$spec"; then
  echo "ci-local: skipped: no PolicyTest documents under $spec (as in the CI templates)"
else
  capstan policy test "$spec"
fi

plan_help=$(capstan plan --help)
plan_args=("$spec" --state "${CI_LOCAL_STATE:-sqlite:$work/state.db}")
if grep -q -- '--base' <<<"$plan_help" && grep -q -- '--offline' <<<"$plan_help"; then
  plan_args+=(--base "$base_sha" --offline)
else
  echo "ci-local: this capstan has no \`plan --base/--offline\`: planning the whole spec against the live state instead of the change since $base"
fi
markdown=no
if grep -q -- '--format' <<<"$plan_help"; then
  markdown=yes
  plan_args+=(--format markdown --out-json "$work/plan.json")
else
  echo "ci-local: this capstan has no \`plan --format markdown\`: the comment below wraps the text plan"
fi

step "capstan plan ${plan_args[*]}"
capstan plan "${plan_args[@]}" >"$work/plan.out"
if [ "$markdown" = yes ]; then
  cp "$work/plan.out" "$work/comment.md"
else
  { echo '```'; cat "$work/plan.out"; echo '```'; } >"$work/comment.md"
fi

step "the comment CI would post (or update)"
echo "----- comment -----"
cat "$work/comment.md"
echo "----- end of comment -----"
