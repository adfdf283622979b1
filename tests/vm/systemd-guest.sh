#!/bin/bash
# Runs inside the systemd test VM (tests/vm/systemd.sh) as c3n-vmtest.service, with systemd as
# PID 1. Installs c3n-edge with systemd/install.sh, configures it the way a user would (edits the
# shipped /etc/c3n-edge/c3n-edge.env and c3n-edge.toml), then checks the real unit.
# Phase 1, the unit as shipped with the t1 model on assets/clips/bbb-bird (looping):
#   ready      Type=notify: activating while the engine loads, active (running) only after READY=1
#   hardening  dynamic user in video+audio, no capabilities, seccomp filter, NoNewPrivs; in the
#              service's own mount namespace Cache/StateDirectory writable, /usr, /var/log, /
#              read-only, /etc/c3n-edge not writable, /root and /home inaccessible
#   events     JSON lines in the StateDirectory, camera name from $CONFIGURATION_DIRECTORY's TOML
#   journal    plain-text log records with their priority
#   stop-t1    systemctl stop mid-window: SIGTERM -> STOPPING=1 -> exit 0, no SIGKILL
# Phase 2, the contract stand-in model (quick windows) and a drop-in WatchdogSec=20,
# SystemCallErrorNumber=kill:
#   watchdog   WATCHDOG=1 keeps coming; SIGSTOP -> killed after WatchdogSec, Result=watchdog,
#              restarted (NRestarts=1), ready again; then a clean stop; no SIGSYS anywhere
# Prints C3N_SYSVM_OK <check> / C3N_SYSVM_FAIL <check>: <why> lines and a final
# C3N_SYSVM_DONE line on the serial console; indented lines are information. The host script
# decides pass/fail from these lines. Times are the guest's uptime in seconds.
set -u
SRC=/srv/c3n-edge-src
STAGE=/srv/c3n-edge-stage
CLIP=$SRC/assets/clips/bbb-bird
U=c3n-edge.service
EVENTS=/var/lib/c3n-edge/events.jsonl
# the guest runs under TCG (software CPU emulation): the t1 engine load and first window took
# 70-150 s, later windows 35-70 s (measured on 2 shared cores), so the waits are generous; the
# host's timeout bounds the whole run
READY_LIMIT=${C3N_SYSVM_READY_LIMIT:-300}
FAILED=0

up() { cut -d' ' -f1 /proc/uptime; }
info() { echo "  [$(up)] $*"; }
ok() { echo "C3N_SYSVM_OK $1${2:+: $2}"; }
fail() { echo "C3N_SYSVM_FAIL $1: $2"; FAILED=$((FAILED + 1)); }
prop() { systemctl show -p "$1" --value "$U"; }
# all properties of the unit into P[...] (one systemctl call instead of one per property)
declare -A P
snap() { local k v; P=(); while IFS='=' read -r k v; do P[$k]=$v; done < <(systemctl show "$U"); }
# journal lines (short-monotonic) logged at or after uptime $1; $2.. more journalctl arguments
# (e.g. -u UNIT). Not --after-cursor: with -u it missed the first matching line here (systemd 252).
journal_since() {
  local t=$1; shift
  journalctl -o short-monotonic --no-pager -a "$@" \
    | awk -v t="$t" '{ s = $0; sub(/^\[ */, "", s); split(s, a, "]"); if (a[1] + 0 >= t) print }'
}
# seconds (float) between two microsecond monotonic timestamps
usec_diff() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1e6 }'; }
finish() {
  if [ "$FAILED" -gt 0 ]; then
    info "journal of $U (last 80 lines):"
    journalctl -u "$U" -o short-monotonic --no-pager -a 2>&1 | tail -n 80 | sed 's/^/    /'
  fi
  echo "C3N_SYSVM_DONE failed=$FAILED uptime=$(up)"
  systemctl --force --force poweroff
  exit 0
}
# waits until `systemctl show` reports ActiveState/SubState = $1 (e.g. active/running); fails
# early on failed/inactive; prints the state transitions. Returns 1 on timeout or failure.
wait_state() {
  local want=$1 limit=$2 end last="" s
  end=$(( $(date +%s) + limit ))
  while [ "$(date +%s)" -lt "$end" ]; do
    s=$(systemctl show -p ActiveState -p SubState -p MainPID "$U" \
      | awk -F= '{ v[$1] = $2 } END { printf "%s/%s pid=%s", v["ActiveState"], v["SubState"], v["MainPID"] }')
    [ "$s" != "$last" ] && { info "$U: $s"; last=$s; STATES+=("$s"); }
    case "$s" in
      "$want "*) return 0 ;;
      failed/*|inactive/*) return 1 ;;
    esac
    sleep 0.5
  done
  return 1
}

info "PID 1: $(cat /proc/1/comm), $(systemctl --version | head -n1), kernel $(uname -r)"
[ "$(cat /proc/1/comm)" = systemd ] && ok pid1 "systemd is PID 1" || fail pid1 "PID 1 is $(cat /proc/1/comm)"
info "system state: $(systemctl is-system-running 2>&1), boot: $(systemd-analyze 2>&1 | head -n1)"

# ---- install as README "Jetson deployment" says, then configure like a user ----
info "install.sh"
out=$(bash "$SRC/systemd/install.sh" --bin "$STAGE/c3n-edge" --no-start 2>&1); rc=$?
echo "$out" | sed 's/^/    /'
if [ $rc -eq 0 ] && echo "$out" | grep -q 'enable and start with' \
   && [ "$(prop LoadState)" = loaded ] && [ "$(prop FragmentPath)" = /etc/systemd/system/$U ]; then
  ok install "install.sh --no-start: daemon-reloaded, unit loaded from $(prop FragmentPath)"
else
  fail install "install.sh exit $rc, LoadState=$(prop LoadState) FragmentPath=$(prop FragmentPath)"
  finish
fi
ENV=/etc/c3n-edge/c3n-edge.env
sed -i -e "s|^#C3N_MODEL=.*|C3N_MODEL=/usr/local/share/c3n-edge/models/c3n-edge-t1.onnx|" \
  -e "s|^#C3N_INPUT=.*|C3N_INPUT=file://$CLIP/frames/%05d.png|" \
  -e "s|^#C3N_AUDIO=.*|C3N_AUDIO=file://$CLIP/audio.wav|" \
  -e "s|^#C3N_EVENTS=.*|C3N_EVENTS=$EVENTS|" \
  -e "s|^#C3N_EXTRA_ARGS=.*|C3N_EXTRA_ARGS=--input-loop -1|" "$ENV"
# events after one frame (the t1 model analyses one frame a window) and a camera name that
# proves the service read $CONFIGURATION_DIRECTORY/c3n-edge.toml
sed -i -e 's|^min_frames = 2 |min_frames = 1 |' -e 's|^camera = "default"|camera = "vmtest"|' /etc/c3n-edge/c3n-edge.toml
grep -E '^C3N_|^RUST_LOG' "$ENV" | sed 's/^/    env: /'
if [ "$(grep -cE '^C3N_(MODEL|INPUT|AUDIO|EVENTS|EXTRA_ARGS)=' "$ENV")" = 5 ] \
   && grep -q '^min_frames = 1 ' /etc/c3n-edge/c3n-edge.toml && grep -q '^camera = "vmtest"' /etc/c3n-edge/c3n-edge.toml; then
  ok configure "c3n-edge.env: t1 model, bbb-bird clip looping, events in the StateDirectory; c3n-edge.toml: min_frames 1, camera vmtest"
else
  fail configure "the shipped c3n-edge.env / c3n-edge.toml lines to edit were not found"
fi
info "systemctl enable"
systemctl enable "$U" 2>&1 | sed 's/^/    /'
[ "$(systemctl is-enabled "$U")" = enabled ] && ok enable "systemctl enable: $(systemctl is-enabled "$U")" \
  || fail enable "is-enabled: $(systemctl is-enabled "$U")"

# ---- phase 1: the unit as shipped, the t1 model ----
# PID 1 logs every sd_notify message it accepts ("Got notification message") at debug level; not
# during daemon-reloads, which log every unit (slow under TCG)
systemctl log-level debug
# starts the unit and waits for active (running); checks that it was activating (main process
# running) first and became active only after READY=1. $1: check name.
start_ready() {
  local name=$1 t_start j n_ready n_notify n_started gap saw_start=0 s status
  STATES=()
  t_start=$(up)
  systemctl start --no-block "$U"
  if ! wait_state active/running "$READY_LIMIT"; then
    fail "$name" "not active (running) within $READY_LIMIT s; states: ${STATES[*]}; Result=$(prop Result) ExecMainCode=$(prop ExecMainCode) ExecMainStatus=$(prop ExecMainStatus)"
    finish
  fi
  snap
  pid=${P[MainPID]}
  info "active after $(awk -v a="$t_start" -v b="$(up)" 'BEGIN { printf "%.1f", b - a }') s"
  st_out=$(systemctl status --no-pager "$U" 2>&1)
  echo "$st_out" | head -n 12 | sed 's/^/    /'
  j=$(journalctl -u "$U" -o short-monotonic --no-pager -a)
  n_ready=$(echo "$j" | grep -n "notifying systemd READY=1" | tail -n1 | cut -d: -f1)
  n_notify=$(echo "$j" | grep -n "Got notification message from PID $pid (READY=1" | head -n1 | cut -d: -f1)
  n_started=$(echo "$j" | grep -n "Started $U" | tail -n1 | cut -d: -f1)
  gap=$(usec_diff "${P[ExecMainStartTimestampMonotonic]}" "${P[ActiveEnterTimestampMonotonic]}")
  for s in "${STATES[@]}"; do case "$s" in "activating/start pid=$pid") saw_start=1 ;; esac; done
  if [ "${P[Type]}" = notify ] && [ $saw_start = 1 ] && [ -n "$n_ready" ] && [ -n "$n_notify" ] \
     && [ -n "$n_started" ] && [ "$n_ready" -lt "$n_started" ] && [ "$n_notify" -lt "$n_started" ] \
     && echo "$st_out" | grep -q 'Active: active (running)'; then
    ok "$name" "Type=notify: activating/start while PID $pid loaded the engine, active (running) $gap s after exec, only after READY=1 (journal lines $n_ready, $n_notify < 'Started' line $n_started)"
  else
    fail "$name" "Type=${P[Type]} saw_start=$saw_start READY log line=${n_ready:-none} notification=${n_notify:-none} Started=${n_started:-none} states: ${STATES[*]}"
  fi
}
# systemctl stop, then: exit status 0 after SIGTERM and STOPPING=1, within TimeoutStopSec, no
# SIGKILL. $1: check name.
stop_clean() {
  local name=$1 since t0 took res code st as j
  pid=$(prop MainPID)
  since=$(up)
  t0=$(date +%s.%N)
  systemctl stop "$U"
  took=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  snap
  res=${P[Result]}; code=${P[ExecMainCode]}; st=${P[ExecMainStatus]}; as=${P[ActiveState]}
  j=$(journal_since "$since" -u "$U")
  echo "$j" | grep -E 'signal 15|STOPPING=1|Killing|timed out|Deactivated|Stopped|Failed|Main process exited' | cut -c1-200 | sed 's/^/    /'
  # ExecMainCode 1 = CLD_EXITED
  if [ "$res" = success ] && [ "$code" = 1 ] && [ "$st" = 0 ] && [ "$as" = inactive ] \
     && echo "$j" | grep -q "signal 15: stopping after the current window" \
     && echo "$j" | grep -q "Got notification message from PID $pid (STOPPING=1" \
     && ! echo "$j" | grep -qE "Killing|timed out"; then
    ok "$name" "systemctl stop of PID $pid in $took s: SIGTERM, STOPPING=1, exit status 0 (Result=success), no SIGKILL"
  else
    fail "$name" "after $took s: Result=$res ExecMainCode=$code ExecMainStatus=$st ActiveState=$as"
  fi
}

start_ready ready
status=${P[StatusText]}
case "$status" in "engine tract"*) ok status "STATUS=: $status" ;; *) fail status "StatusText=$status" ;; esac

# ---- hardening, seen from outside and from inside the service's mount namespace ----
st=/proc/$pid/status
uid=$(awk '/^Uid:/ {print $2}' "$st"); gid=$(awk '/^Gid:/ {print $2}' "$st")
groups=" $(awk '/^Groups:/ {$1=""; print}' "$st") "
info "PID $pid: uid $uid ($(getent passwd "$uid" | cut -d: -f1)), gid $gid, groups$groups; $(grep -E '^(NoNewPrivs|Seccomp|Seccomp_filters|CapEff|CapBnd):' "$st" | tr -s '\t\n' '  ')"
if [ "$uid" -ge 61184 ] && [ "$uid" -le 65519 ] && [[ "$groups" == *" 44 "* ]] && [[ "$groups" == *" 29 "* ]]; then
  ok identity "DynamicUser uid $uid (61184-65519), SupplementaryGroups video(44) audio(29)"
else
  fail identity "uid $uid groups$groups"
fi
if grep -q '^NoNewPrivs:[[:space:]]*1' "$st" && grep -q '^Seccomp:[[:space:]]*2' "$st" \
   && grep -q '^CapEff:[[:space:]]*0000000000000000' "$st" && grep -q '^CapBnd:[[:space:]]*0000000000000000' "$st"; then
  ok privileges "NoNewPrivs, seccomp filter mode, no effective or bounding capabilities"
else
  fail privileges "$(grep -E '^(NoNewPrivs|Seccomp|CapEff|CapBnd):' "$st" | tr '\n' ' ')"
fi
envs=$(tr '\0' '\n' < "/proc/$pid/environ")
env_ok=1
for v in CACHE_DIRECTORY=/var/cache/c3n-edge STATE_DIRECTORY=/var/lib/c3n-edge CONFIGURATION_DIRECTORY=/etc/c3n-edge WATCHDOG_USEC=60000000; do
  echo "$envs" | grep -qx "$v" || { env_ok=0; fail environment "$v not in the service's environment"; }
done
[ $env_ok = 1 ] && ok environment "CACHE_DIRECTORY, STATE_DIRECTORY, CONFIGURATION_DIRECTORY, WATCHDOG_USEC=60000000 set"
# as the service's uid/gid, in its mount namespace (ProtectSystem=strict, ProtectHome, PrivateTmp):
# one shell prints "<dir> ok" or "<dir> <error>" per probe
r=$(nsenter -t "$pid" -m -- setpriv --reuid="$uid" --regid="$gid" --clear-groups sh -c '
  for d in /var/cache/c3n-edge /var/lib/c3n-edge /tmp /usr/local/share/c3n-edge /var/log / /etc/c3n-edge; do
    e=$(touch "$d/.vmtest-probe" 2>&1) && { rm -f "$d/.vmtest-probe"; echo "$d ok"; } || echo "$d ${e##*: }"
  done' 2>&1)
# ProtectHome=yes: /root and /home are inaccessible (mode 000) in the service's namespace
home=$(nsenter -t "$pid" -m -- stat -c '%a' /root /home 2>&1 | tr '\n' ' ')
echo "$r" | sed 's/^/    probe as the service: /'
info "/etc/c3n-edge in the service's namespace: $(nsenter -t "$pid" -m -- findmnt -n -o TARGET,OPTIONS -T /etc/c3n-edge)"
want="/var/cache/c3n-edge ok
/var/lib/c3n-edge ok
/tmp ok
/usr/local/share/c3n-edge Read-only file system
/var/log Read-only file system
/ Read-only file system
/etc/c3n-edge Permission denied"
# the ConfigurationDirectory stays root's: systemd 252 bind-mounts it writable, ownership protects it
if [ "$r" = "$want" ] && [ "$home" = "0 0 " ]; then
  ok filesystem "as uid $uid in the service's namespace: Cache/StateDirectory and /tmp writable; /usr, /var/log, / read-only file systems; /etc/c3n-edge not writable; /root, /home inaccessible"
else
  fail filesystem "probes: $(echo "$r" | tr '\n' '|'); /root /home modes: $home"
fi
owner=$(stat -c '%u' /var/lib/private/c3n-edge /var/cache/private/c3n-edge | sort -u | tr '\n' ' ')
[ "$owner" = "$uid " ] && ok directories "/var/lib/private/c3n-edge and /var/cache/private/c3n-edge owned by uid $uid" \
  || fail directories "owners: $owner (service uid $uid)"

# ---- events: JSON lines in the StateDirectory, camera name from the config file ----
end=$(( $(date +%s) + 120 ))
while [ "$(date +%s)" -lt "$end" ] && ! grep -q '"type":"new"' "$EVENTS" 2>/dev/null; do sleep 1; done
if python3 -S - "$EVENTS" <<'PY'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
ev = [json.loads(l) for l in lines]            # every line must be JSON
new = [e for e in ev if e.get("type") == "new"]
assert new, f"no 'new' event in {len(ev)} lines"
cams = {e["after"]["camera"] for e in ev}
assert cams == {"vmtest"}, f"camera names {cams} (c3n-edge.toml sets vmtest)"
print(f"  {len(ev)} events, first: {new[0]['type']} {new[0]['after']['label']} score {new[0]['after']['score']:.3f}")
PY
then
  ok events "JSON-line events in $EVENTS (StateDirectory), camera 'vmtest' from /etc/c3n-edge/c3n-edge.toml"
else
  fail events "no valid 'new' event in $EVENTS"
fi
# the service's log records: plain text, journald's timestamp only, and their priority (WARN
# records at warning, INFO at info: journalctl -p warning shows the warnings)
line=$(journalctl -u "$U" -o cat --no-pager | grep -m1 'first window analysed')
warn=$(journalctl -u "$U" -p warning -o cat --no-pager)
info "journal line: $(echo "$line" | cat -v)"
echo "$warn" | sed 's/^/    journalctl -p warning: /'
if [ -n "$line" ] && ! echo "$line" | grep -q $'\e' && ! echo "$line" | grep -qE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T' \
   && echo "$warn" | grep -qE 'WARN c3n_edge::engine(::[a-z_]+)*: engine auto: tensorrt skipped' \
   && ! echo "$warn" | grep -q 'first window analysed'; then
  ok journal "the service's log records are plain text in the journal (no colour codes, no second timestamp), WARN at priority warning, INFO below"
else
  fail journal "log line in the journal: $(echo "$line" | cat -v); at priority warning or higher: $(echo "$warn" | head -n 5 | tr '\n' '|')"
fi
stop_clean stop-t1

# ---- phase 2: the watchdog, with a quick model ----
# Under TCG a t1 window takes about as long as the shipped WatchdogSec=60 (35-70 s), so this phase
# uses the tiny contract stand-in model (tests/fixtures/make_contract_model.py, 3-9 s a window
# here) and a shorter watchdog, set the way an administrator would: a drop-in (systemctl edit).
install -m 0644 "$STAGE/c3n-contract-t1.onnx" /usr/local/share/c3n-edge/models/
sed -i "s|^C3N_MODEL=.*|C3N_MODEL=/usr/local/share/c3n-edge/models/c3n-contract-t1.onnx|" "$ENV"
WD=20
mkdir -p /etc/systemd/system/$U.d
cat > /etc/systemd/system/$U.d/vmtest.conf <<DROPIN
[Service]
# windows take 3-9 s with the stand-in model under TCG
WatchdogSec=$WD
# a system call outside SystemCallFilter= kills the process (SIGSYS) instead of failing with EPERM,
# so a call the shipped unit would silently deny shows up
SystemCallErrorNumber=kill
DROPIN
systemctl log-level info
systemctl daemon-reload
systemctl log-level debug
info "drop-in vmtest.conf: WatchdogSec=$WD, SystemCallErrorNumber=kill; $(grep ^C3N_MODEL "$ENV")"
phase2=$(up)
start_ready ready-quick
w0=$(prop WatchdogTimestampMonotonic)
end=$(( $(date +%s) + 60 ))
while [ "$(date +%s)" -lt "$end" ] && [ "$(prop WatchdogTimestampMonotonic)" = "$w0" ]; do sleep 0.2; done
w1=$(prop WatchdogTimestampMonotonic)
if [ "$w1" != "$w0" ] && [ "$(prop SubState)" = running ]; then
  ok watchdog-fed "WATCHDOG=1 again $(usec_diff "$w0" "$w1") s after the previous ping (WatchdogSec=$(prop WatchdogUSec))"
else
  fail watchdog-fed "no new WATCHDOG=1 within 60 s (state $(prop ActiveState)/$(prop SubState))"
fi
pid=$(prop MainPID)
since=$(up)
kill -STOP "$pid"
w1=$(prop WatchdogTimestampMonotonic)  # the last ping: the process sends none while stopped
info "SIGSTOP to PID $pid; its last WATCHDOG=1 was at $(usec_diff 0 "$w1") s"
end=$(( $(date +%s) + WD + 60 ))
j=""
while [ "$(date +%s)" -lt "$end" ]; do
  j=$(journal_since "$since" -u "$U")
  echo "$j" | grep -q 'Scheduled restart job' && break
  sleep 1
done
echo "$j" | grep -E 'Watchdog timeout|Main process exited|Failed with result|Scheduled restart' | cut -c1-160 | sed 's/^/    /'
wd_at=$(echo "$j" | grep -m1 'Watchdog timeout' | sed -n 's/^\[ *\([0-9.]*\)\].*/\1/p')
lag=$(awk -v a="$(usec_diff 0 "$w1")" -v b="${wd_at:-0}" 'BEGIN { printf "%.1f", b - a }')
# SIGABRT: the default WatchdogSignal=; "dumped" when a core was written
if [ -n "$wd_at" ] && echo "$j" | grep -qE "Main process exited, code=(killed|dumped), status=6/ABRT" \
   && echo "$j" | grep -q "Failed with result 'watchdog'" \
   && echo "$j" | grep -q "Scheduled restart job, restart counter is at 1" \
   && awk -v l="$lag" -v w="$WD" 'BEGIN { exit !(l >= w - 1 && l <= w + 10) }'; then
  ok watchdog-kill "frozen PID $pid killed with SIGABRT $lag s after its last WATCHDOG=1 (WatchdogSec=$WD), Result=watchdog, restart scheduled"
else
  fail watchdog-kill "watchdog timeout ${lag} s after the last ping (WatchdogSec=$WD); journal: $(echo "$j" | grep -E 'Watchdog|exited|result|restart' | tr '\n' '|')"
fi
STATES=()
if wait_state active/running "$READY_LIMIT" && [ "$(prop NRestarts)" = 1 ] && [ "$(prop MainPID)" != "$pid" ]; then
  ok watchdog-restart "restarted after RestartSec=5 (Restart=on-failure, NRestarts=1), new PID $(prop MainPID) ready again; states: ${STATES[*]}"
else
  fail watchdog-restart "NRestarts=$(prop NRestarts) MainPID=$(prop MainPID) (frozen was $pid); states: ${STATES[*]}"
  finish
fi
stop_clean stop
# phase 2 ran with SystemCallErrorNumber=kill: a filtered system call would have ended a process
# with SIGSYS (status=31/SYS) and left an audit record (type=1326) in the kernel log
j=$(journal_since "$phase2")
if ! echo "$j" | grep -qE 'status=31/SYS|type=1326|SECCOMP'; then
  ok seccomp "no system call outside SystemCallFilter= (SystemCallErrorNumber=kill in phase 2)"
else
  fail seccomp "$(echo "$j" | grep -E 'status=31/SYS|type=1326|SECCOMP' | head -n 3 | tr '\n' '|')"
fi
if python3 -S - "$EVENTS" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]).read().splitlines()]
assert ev and ev[-1]["type"] == "end", f"last event: {ev[-1]['type'] if ev else None}"
print(f"  {len(ev)} events in the file after the stop, the last one: end")
PY
then
  ok final-events "the stopped run closed its objects with 'end' events"
else
  fail final-events "the events file does not end with an 'end' event"
fi
finish
