"""The strongest shell pipelines a person who knows their tools would write for the same checks:

* `dig -f` (one process per phase: the names, then the PTRs) + `curl --parallel --parallel-max 64`;
* `adnshost` (Debian adns-tools; asynchronous, in chunks of 250 queries) + `curl --parallel`.

Both judge what ssdns's full check judges, in one awk program: the Service has addresses, the schema TXT
is "1.1.0", and per pod: exactly one A, that IP in the Service, an SRV target on the HTTP port, the PTR
of the IP names the pod, and the HTTP body is the pod's name. Each prints `checks=C fails=F`.
Arguments: NS_HOST NS_PORT HTTP_PORT N. adnshost can only ask port 53.
"""

from __future__ import annotations

CHECK_AWK = r'''
# input lines: "owner TYPE data..." (no trailing dots); then one file per HTTP body, named by pod
BEGIN { SVC = "nginx.default.svc.cluster.local"; SRVN = "_web._tcp." SVC; nsvc = 0 }
FILENAME ~ /\/b\/web-[0-9]+$/ { pod = FILENAME; sub(/.*\//, "", pod); body[pod] = $0; next }
$2 == "A" && $1 == SVC { if (!($3 in svc)) nsvc++; svc[$3] = 1; next }
$2 == "SRV" && $1 == SRVN { srv[$6 " " $5] = 1; next }
$2 == "TXT" { ver = $3; next }
$2 == "A" { pod = $1; sub(/\..*/, "", pod); na[pod]++; ip[pod] = $3; next }
$2 == "PTR" { split($1, o, "."); ptr[o[4] "." o[3] "." o[2] "." o[1]] = $3; next }
END {
  checks++; if (nsvc == 0) fails++
  checks++; if (ver != "\"1.1.0\"") fails++
  for (i = 0; i < n; i++) {
    p = "web-" i; f = p "." SVC
    checks++; if (na[p] != 1) { fails++; continue }
    checks++; if (!(ip[p] in svc)) fails++
    checks++; if (!((f " " hp) in srv)) fails++
    checks++; if (ptr[ip[p]] != f) fails++
    checks++; if (body[p] != p) fails++
  }
  print "checks=" checks " fails=" fails + 0
}
'''

_COMMON = r'''
set -u
NS=$1; P=$2; HP=$3; N=$4
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
SVC=nginx.default.svc.cluster.local
cat > "$T/check.awk" <<'AWK'
''' + CHECK_AWK + r'''
AWK
curls() {  # one curl process for every pod: 64 transfers at a time, bodies to $T/b/<pod>
  mkdir -p "$T/b"
  awk -v hp="$HP" -v b="$T/b" '$2 == "A" && $1 ~ /^web-/ { pod = $1; sub(/\..*/, "", pod);
    printf "url = \"http://%s:%s/\"\nheader = \"Host: %s\"\noutput = \"%s/%s\"\n", $3, hp, $1, b, pod }' \
    "$T/a1" > "$T/curl.cfg"
  curl -s --parallel --parallel-max 64 -m 3 -K "$T/curl.cfg" 2>/dev/null
}
judge() { awk -v n="$N" -v hp="$HP" -f "$T/check.awk" "$T/a1" "$T/a2" "$T"/b/web-*; }
'''

DIGF_SH = _COMMON + r'''
norm() { awk '{ sub(/\.$/, "", $1); d = ""; for (i = 5; i <= NF; i++) { v = $i; sub(/\.$/, "", v); d = d " " v }
  print $1, $4 d }'; }
big=""; [ "$N" -gt 16 ] && big="+tcp"   # as ssdns: the large sets straight over TCP
{ echo "$big $SVC. A"; echo "$SVC. AAAA"; echo "$big _web._tcp.$SVC. SRV"; echo "dns-version.cluster.local. TXT"
  for ((i = 0; i < N; i++)); do echo "web-$i.$SVC. A"; done; } > "$T/q1"
dig @"$NS" -p "$P" +noall +answer +time=2 +tries=2 -f "$T/q1" | norm > "$T/a1"
awk '$2 == "A" && $1 ~ /^web-/ { split($3, o, "."); print o[4] "." o[3] "." o[2] "." o[1] ".in-addr.arpa. PTR" }' \
  "$T/a1" > "$T/q2"
dig @"$NS" -p "$P" +noall +answer +time=2 +tries=2 -f "$T/q2" | norm > "$T/a2"
curls
judge
'''

ADNS_SH = _COMMON + r'''
[ "$P" = 53 ] || { echo "adnshost asks port 53 only (nameserver port $P)" >&2; exit 2; }
adns() {  # chunks of 250 queries, each chunk one adnshost with its own type option lines
  split -l 250 - "$T/chunk."
  for c in "$T"/chunk.*; do
    { echo "-t$1"; cat "$c"; } | adnshost --config "nameserver $NS" -a -f 2>/dev/null
    rm -f "$c"
  done | awk '!($2 ~ /^[0-9]+$/ && NF >= 6)'
}
{ echo "-ta"; echo "$SVC"; echo "-taaaa"; echo "$SVC"; echo "-tsrv-"; echo "_web._tcp.$SVC"
  echo "-ttxt"; echo "dns-version.cluster.local"; } | adnshost --config "nameserver $NS" -a -f 2>/dev/null \
  | awk '!($2 ~ /^[0-9]+$/ && NF >= 6)' > "$T/a1"
for ((i = 0; i < N; i++)); do echo "web-$i.$SVC"; done | adns a >> "$T/a1"
awk '$2 == "A" && $1 ~ /^web-/ { split($3, o, "."); print o[4] "." o[3] "." o[2] "." o[1] ".in-addr.arpa" }' \
  "$T/a1" | adns ptr- > "$T/a2"
curls
judge
'''
