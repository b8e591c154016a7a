#!/usr/bin/env bash
# Break the docker-compose cluster on purpose and check it heals:
#   1. the blog runs (3 pods answering HTTP on the workers);
#   2. the kvstore leader's container is killed: both API servers keep serving writes and reads;
#   3. the acting controller-manager is killed: the standby takes over and replaces a deleted pod;
#   4. the killed kvstore member comes back and catches up.
# Usage: deploy/build-image.sh && (cd deploy && docker-compose -p kl up -d) && deploy/ha-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
P=${COMPOSE_PROJECT:-kl}
K1=(target/release/kubectl-lite -s http://127.0.0.1:18080)
K2=(target/release/kubectl-lite -s http://127.0.0.1:18081)
ENDPOINTS=http://kv1:2379,http://kv2:2379,http://kv3:2379

# Poll a command until it succeeds, or fail after $1 seconds.
until_ok() {
    local secs=$1 what=$2
    shift 2
    local end=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= end)); then
            echo "FAIL: $what (after ${secs}s)" >&2
            exit 1
        fi
        sleep 0.5
    done
    echo "ok: $what"
}
running_pods() { [ "$("${K1[@]}" get pods -l app=blog --no-headers | grep -c ' Running ')" = "$1" ]; }
serves() {
    local ip node
    for row in $("${K1[@]}" get pods -l app=blog -o jsonpath='{range .items[*]}{.status.podIP}/{.spec.nodeName}{" "}{end}'); do
        ip=${row%/*} node=${row#*/}
        docker exec "${P}_${node}_1" python3 -c \
            "import urllib.request; urllib.request.urlopen('http://$ip:8000/', timeout=2)" || return 1
    done
}
kv_leader() {
    docker exec "${P}_kv1_1" kvstore ctl --endpoints "$ENDPOINTS" endpoint status 2>/dev/null \
        | awk -F'|' '$6 ~ /true/ {gsub(/ |http:\/\/|:2379/, "", $2); print $2}'
}

until_ok 60 "both nodes Ready" sh -c "${K1[*]} get nodes --no-headers | grep -c ' Ready ' | grep -qx 2"
"${K1[@]}" apply -f examples/blog.yaml
until_ok 120 "3 blog pods Running" running_pods 3
until_ok 60 "every blog pod answers HTTP" serves

leader=$(kv_leader)
[ -n "$leader" ] || { echo "FAIL: no kvstore leader" >&2; exit 1; }
echo "killing the kvstore leader: $leader"
docker kill "${P}_${leader}_1" >/dev/null
until_ok 10 "a write through api1 after losing the kvstore leader" "${K1[@]}" create configmap after-kill-1 --from-literal=a=1
until_ok 10 "a write through api2" "${K2[@]}" create configmap after-kill-2 --from-literal=a=2
until_ok 10 "api2 reads api1's write" "${K2[@]}" get configmap after-kill-1

cm=$("${K1[@]}" get lease -n kube-system kube-controller-manager -o jsonpath='{.spec.holderIdentity}')
cm=${cm%%_*}
echo "killing the acting controller-manager: $cm"
docker kill "${P}_${cm}_1" >/dev/null
pod=$("${K1[@]}" get pods -l app=blog -o name | head -1)
"${K1[@]}" delete "$pod" --wait=false
until_ok 60 "the standby controller-manager replaced the deleted pod" running_pods 3
until_ok 30 "and every blog pod answers HTTP" serves

echo "restarting $leader and $cm"
docker start "${P}_${leader}_1" "${P}_${cm}_1" >/dev/null
caught_up() {
    docker exec "${P}_kv1_1" kvstore ctl --endpoints "$ENDPOINTS" endpoint status \
        | awk -F'|' 'NR>3 && NF>10 {gsub(/ /, "", $12); print $12}' | sort -u | wc -l | grep -qx 1
}
until_ok 60 "all three kvstore members at the same revision" caught_up
"${K1[@]}" delete deployment blog
"${K1[@]}" delete configmap after-kill-1 after-kill-2 blog-config
echo "HA check passed"
