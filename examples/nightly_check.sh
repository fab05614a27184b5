#!/usr/bin/env bash
# Nightly check of the newest distillation checkpoint: t-SNE figures, then the alignment grade
# against a bar, and an alert when the grade is below the bar or a step fails.
#
# crontab -e, every night at 02:30 (cron's PATH is bare: name the one that holds mdcli):
#   30 2 * * * PATH=/opt/mdcli/venv/bin:/usr/bin:/bin MDCLI_WORK_DIR=/data/runs /opt/mdcli/examples/nightly_check.sh >>/data/runs/nightly_check.log 2>&1
#
# Steps: the newest WORK_DIR/distill/*/checkpoints/last.pt (by modification time), then
#   mdcli tsne  --ckpt LAST --work-dir WORK_DIR --name nightly_<run>_<UTC time>
#   mdcli align --ckpt LAST --work-dir WORK_DIR --name nightly_<run>_<UTC time> --fail-under good --json
# (align reuses the features tsne extracted: both read the distill run's cache/).
#
# Environment [default]:
#   MDCLI_WORK_DIR     the work dir of the distill runs [runs]
#   MDCLI_BIN          the mdcli command, shell-quoted, e.g. "python -m mdcli" [mdcli]
#   MDCLI_FAIL_UNDER   good | excellent [good]
#   MDCLI_DEVICE       --device for both steps, e.g. cpu [the config's]
#   MDCLI_PYTHON       the python that reads align's JSON report [python3]
#   MDCLI_TSNE_ARGS    more tsne arguments, shell-quoted, e.g. "--perplexity 50" [none]
#   MDCLI_ALIGN_ARGS   more align arguments, shell-quoted, e.g. "--max-samples 500" [none]
#   MDCLI_ALERT_CMD    shell command run for an alert: subject in $1, message in $2 and on
#                      stdin, e.g. 'mail -s "$1" team@example.org' or
#                      'curl -fsS -d "$1: $2" https://hooks.example.org/mdcli'
#                      [print on stderr and to syslog with logger -t mdcli-nightly]
#
# Exit code: 0 graded at or above the bar; otherwise the code of the step that stopped the
# check, after the alert: 3 below the bar, 2 bad input (also: no checkpoint found), 1 a
# failure while running, 130 interrupted.
set -euo pipefail

WORK_DIR=${MDCLI_WORK_DIR:-runs}
FAIL_UNDER=${MDCLI_FAIL_UNDER:-good}
DEVICE=${MDCLI_DEVICE:-}
PYTHON=${MDCLI_PYTHON:-python3}

log() { printf '%s nightly_check: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }

# split_args ARRAY STRING: split STRING as the shell splits words (quotes, backslashes) into
# ARRAY, without expanding anything in it: no $variables, no $(commands), no globs.
split_args() {
    mapfile -t -d '' "$1" < /dev/null
    [[ -n ${2//[[:space:]]/} ]] || return 0
    if ! printf '%s' "$2" | xargs printf '%s\0' > /dev/null; then
        alert "bad arguments" "cannot split '$2' into arguments (unbalanced quotes?)"
        exit 2
    fi
    mapfile -t -d '' "$1" < <(printf '%s' "$2" | xargs printf '%s\0')
}

# alert SUBJECT MESSAGE: run MDCLI_ALERT_CMD, or print and log it; never fails the script.
alert() {
    local subject="mdcli nightly check: $1" message=$2
    log "ALERT $subject: $message"
    if [[ -n ${MDCLI_ALERT_CMD:-} ]]; then
        bash -c "$MDCLI_ALERT_CMD" mdcli-alert "$subject" "$message" <<< "$message" \
            || log "the alert command failed (exit $?): $MDCLI_ALERT_CMD"
    elif command -v logger > /dev/null; then
        logger -t mdcli-nightly -p user.warning -- "$subject: $message" 2> /dev/null || true
    fi
}

# grades JSON: "poor (16 poor, 32 good, ...)" from align's report; "unknown" if unreadable.
read -r -d '' GRADES_PY << 'PY' || true
import json, sys
report = json.load(sys.stdin)
sets = ", ".join(f"{name} {s['grade']}" for name, s in report.get("sets", {}).items())
print(report["grade"] + (f" ({sets})" if sets else ""))
PY
grades() { "$PYTHON" -c "$GRADES_PY" <<< "$1" 2> /dev/null || echo unknown; }

split_args MDCLI "${MDCLI_BIN:-mdcli}"
split_args TSNE_ARGS "${MDCLI_TSNE_ARGS:-}"
split_args ALIGN_ARGS "${MDCLI_ALIGN_ARGS:-}"
COMMON=(--work-dir "$WORK_DIR")
[[ -z $DEVICE ]] || COMMON+=(--device "$DEVICE")

if [[ ! -d $WORK_DIR ]]; then
    alert "no work dir" "MDCLI_WORK_DIR=$WORK_DIR: no such folder"
    exit 2
fi

# One check at a time: a slow night must not overlap the next one.
if command -v flock > /dev/null; then
    exec 9>> "$WORK_DIR/.nightly_check.lock"
    if ! flock -n 9; then
        log "another nightly check holds $WORK_DIR/.nightly_check.lock; nothing to do"
        exit 0
    fi
fi

newest=""
for ckpt in "$WORK_DIR"/distill/*/checkpoints/last.pt; do
    [[ -f $ckpt ]] || continue
    if [[ -z $newest || $ckpt -nt $newest ]]; then
        newest=$ckpt
    fi
done
if [[ -z $newest ]]; then
    alert "no checkpoint" "no $WORK_DIR/distill/*/checkpoints/last.pt to check"
    exit 2
fi
run=$(basename "$(dirname "$(dirname "$newest")")")
name="nightly_${run}_$(date -u +%Y%m%d-%H%M%S)"
log "checking $newest"

# Capture an exit code under set -e: "cmd || rc=$?" is a tested command, so a failure does
# not end the script, and rc keeps the code (0 when it succeeded).
rc=0
"${MDCLI[@]}" tsne --ckpt "$newest" "${COMMON[@]}" --name "$name" "${TSNE_ARGS[@]}" || rc=$?
case $rc in
    0) log "t-SNE figures in $WORK_DIR/tsne/$name" ;;
    2) alert "tsne: bad input" "mdcli tsne --ckpt $newest: exit 2 (bad input, see the log)" ;;
    130) alert "tsne: interrupted" "mdcli tsne --ckpt $newest: interrupted (exit 130)" ;;
    *) alert "tsne failed" "mdcli tsne --ckpt $newest: exit $rc (see $WORK_DIR/tsne/$name/log.txt)" ;;
esac
[[ $rc -eq 0 ]] || exit "$rc"

rc=0
report=$("${MDCLI[@]}" align --ckpt "$newest" "${COMMON[@]}" --name "$name" \
    --fail-under "$FAIL_UNDER" --json "${ALIGN_ARGS[@]}") || rc=$?
case $rc in
    0) log "alignment grade $(grades "$report"), at or above $FAIL_UNDER" ;;
    3) alert "alignment below $FAIL_UNDER" \
         "$newest: grade $(grades "$report"), below --fail-under $FAIL_UNDER; report: $WORK_DIR/align/$name/alignment.json" ;;
    2) alert "align: bad input" "mdcli align --ckpt $newest: exit 2 (bad input, see the log)" ;;
    130) alert "align: interrupted" "mdcli align --ckpt $newest: interrupted (exit 130)" ;;
    *) alert "align failed" "mdcli align --ckpt $newest: exit $rc (see $WORK_DIR/align/$name/log.txt)" ;;
esac
exit "$rc"
