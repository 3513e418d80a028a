#!/usr/bin/env bash
# Grades our client with the official Autobahn|Testsuite: starts `wstest -m fuzzingserver` with
# fuzzingserver.json, runs `npm run autobahn:client` against it, stops wstest, and summarises
# reports/clients/index.json.
#
#   autobahn/run-fuzzingserver.sh                 # every case (sections 1-13; 12 and 13 take long)
#   autobahn/run-fuzzingserver.sh '1.*,2.*,9.*'   # some cases (Autobahn ids or patterns, comma-separated)
#
# Env: AB (wstest install prefix, default ~/.cache/autobahn-testsuite, see ../shared/autobahn/setup.sh),
#      AGENT (name in the report, default rfc6455), CASE_TIMEOUT and TIMEOUT (seconds: per case, whole
#      run; defaults 600 and 3600).
# Each run replaces autobahn/reports/clients (the fuzzingserver reports only the cases of its own run).
# The wstest log is autobahn/reports/fuzzingserver.log.
# Exit status: 0 when every case is OK (INFORMATIONAL where Autobahn only informs) with a proper close,
# 1 otherwise, 2 when wstest is missing or did not start.
# Last line: autobahn-client: <OK+INFORMATIONAL> strict of <N>, <FAILED> failed, ...
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
AB=${AB:-${XDG_CACHE_HOME:-$HOME/.cache}/autobahn-testsuite}
AGENT=${AGENT:-rfc6455}
CASE_TIMEOUT=${CASE_TIMEOUT:-600}
TIMEOUT=${TIMEOUT:-3600}
CASES=${1:-}
SPEC=fuzzingserver.json
REPORT="$HERE/reports/clients"
LOG="$HERE/reports/fuzzingserver.log"

[ -x "$AB/bin/python" ] || { echo "autobahn-client: no wstest under $AB (run ../shared/autobahn/setup.sh)"; exit 2; }

# The spec names the address; the runner is pointed at the same one.
read -r URL HOST PORT < <(python3 -c '
import json, sys
from urllib.parse import urlsplit
url = json.load(open(sys.argv[1]))["url"]
parts = urlsplit(url)
print(url, parts.hostname, parts.port or 80)' "$HERE/$SPEC")

port_open() { (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; }
if port_open; then
  echo "autobahn-client: $HOST:$PORT is already taken (an echo server, an earlier wstest?); stop it first"
  exit 2
fi

rm -rf "$REPORT"
mkdir -p "$REPORT"

# wstest as bin/wstest runs it, with one change: the fuzzingserver listens on the spec's loopback
# address rather than on every interface (autobahn's listenWS binds to all by default), since it
# answers whoever connects with malformed frames. `-u 0`: no embedded web server for the reports.
( cd "$HERE" && exec "$AB/bin/python" -c '
import sys
sys.argv[0] = "wstest"
from autobahntestsuite import wstest, fuzzing
from autobahn.twisted.websocket import listenWS
interface = sys.argv.pop(1)
fuzzing.listenWS = lambda factory, context = None: listenWS(factory, context, interface = interface)
wstest.run()' "$HOST" -m fuzzingserver -s "$SPEC" -u 0 ) > "$LOG" 2>&1 &
WSTEST_PID=$!

stop_wstest() {
  if kill -0 "$WSTEST_PID" 2>/dev/null; then
    kill "$WSTEST_PID" 2>/dev/null
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$WSTEST_PID" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$WSTEST_PID" 2>/dev/null
  fi
  wait "$WSTEST_PID" 2>/dev/null
}
trap stop_wstest EXIT
trap 'exit 130' INT TERM

for _ in $(seq 1 60); do
  port_open && break
  kill -0 "$WSTEST_PID" 2>/dev/null || break
  sleep 0.5
done
if ! port_open; then
  echo "autobahn-client: wstest did not listen on $HOST:$PORT; tail of $LOG:"
  tail -n 15 "$LOG"
  exit 2
fi
echo "autobahn-client: wstest fuzzingserver (pid $WSTEST_PID) on $URL, report in $REPORT"

args=(--url "$URL" --agent "$AGENT" --case-timeout "$CASE_TIMEOUT" --timeout "$TIMEOUT")
[ -n "$CASES" ] && args+=(--cases "$CASES")
# The runner stops by itself at --timeout (plus the case under way and the report); `timeout` is the
# last resort should it hang anyway.
( cd "$ROOT" && timeout -k 10s "$((TIMEOUT + CASE_TIMEOUT + 360))" npm run --silent autobahn:client -- "${args[@]}" )
runner=$?
stop_wstest
trap - EXIT

# A full run is also held to expected-results.json (the same cases and grades as the server's run);
# a partial one would only list the cases it left out.
check=skipped
if [ -z "$CASES" ] && [ -f "$REPORT/index.json" ]; then
  if ( cd "$ROOT" && npm run --silent autobahn:check -- "$REPORT" --agent "$AGENT" ); then check=passed; else check=failed; fi
fi

python3 - "$REPORT" "$AGENT" "$runner" "$check" <<'PY'
import collections, json, os, sys
report, agent, runner, check = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
index_path = os.path.join(report, "index.json")
if not os.path.exists(index_path):
    print("autobahn-client: no report (%s missing; runner exit %d)" % (index_path, runner))
    sys.exit(1)
results = json.load(open(index_path)).get(agent, {})
def case_key(case_id): return tuple(int(part) for part in case_id.split("."))
cases = sorted(results, key=case_key)
def counts(counter): return ", ".join("%s %d" % item for item in sorted(counter.items()))

sections = collections.OrderedDict()
for case_id in cases:
    behavior, close = sections.setdefault(case_id.split(".")[0], (collections.Counter(), collections.Counter()))
    behavior[results[case_id]["behavior"]] += 1
    close[results[case_id]["behaviorClose"]] += 1
print("per section (behavior | behaviorClose):")
for section, (behavior, close) in sections.items():
    print("  %-3s %-40s | %s" % (section, counts(behavior), counts(close)))

# INFORMATIONAL is Autobahn's grade where the RFC leaves the behavior open (7.1.6, 7.13.x).
PROPER = ("OK", "INFORMATIONAL")
not_ok = [c for c in cases if results[c]["behavior"] not in PROPER or results[c]["behaviorClose"] not in PROPER]
if not_ok:
    print("not OK:")
for case_id in not_ok:
    entry = results[case_id]
    detail = {}
    try:
        detail = json.load(open(os.path.join(report, entry["reportfile"].replace(".html", ".json"))))
    except (IOError, OSError, ValueError):
        pass
    print("  %-8s %s / close %s" % (case_id, entry["behavior"], entry["behaviorClose"]))
    for key in ("result", "resultClose"):
        if detail.get(key):
            print("           %s: %s" % (key, " ".join(str(detail[key]).split())[:240]))
    print("           wasClean %s, droppedByMe %s, failedByMe %s, localCloseCode %s, remoteCloseCode %s" % tuple(
        detail.get(key) for key in ("wasClean", "droppedByMe", "failedByMe", "localCloseCode", "remoteCloseCode")))

behaviors = collections.Counter(results[c]["behavior"] for c in cases)
closes = collections.Counter(results[c]["behaviorClose"] for c in cases)
strict = behaviors["OK"] + behaviors["INFORMATIONAL"]
bad_close = sum(n for grade, n in closes.items() if grade not in PROPER)
tail = "" if runner == 0 else " (runner exit %d: a case timed out or the run was cut short)" % runner
print("autobahn-client: %d strict of %d, %d failed, %d non-strict, %d unimplemented, %d with a close not OK, autobahn:check %s%s"
      % (strict, len(cases), behaviors["FAILED"], behaviors["NON-STRICT"], behaviors["UNIMPLEMENTED"], bad_close, check, tail))
sys.exit(0 if runner == 0 and not not_ok and check != "failed" else 1)
PY
