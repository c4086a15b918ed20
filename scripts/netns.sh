#!/usr/bin/env bash
# Three test hosts in Linux network namespaces for the multi-host tests (issue 12 §2; needs root):
# a coordinator host TAG-c joined to two worker hosts TAG-w1 and TAG-w2 by veth links, each its own
# subnet of private test addresses that exist only inside these namespaces:
#     TAG-c  10.77.1.1/24  <-- TAG-c1 == TAG-w1 -->  10.77.1.2/24  TAG-w1
#     TAG-c  10.77.2.1/24  <-- TAG-c2 == TAG-w2 -->  10.77.2.2/24  TAG-w2
#
#   scripts/netns.sh up TAG            create them (exit 2, with the reason, where namespaces cannot be made)
#   scripts/netns.sh netem TAG         20 ms ± 5 ms delay and 1 % loss on both ends of both links: tc netem,
#                                      or without that qdisc scripts/netem-relay.py on TUN links (exit 3
#                                      when neither can be had); NETEM_DELAY_MS, NETEM_JITTER_MS and
#                                      NETEM_LOSS_PCT set other figures
#   scripts/netns.sh rate TAG MBIT     both ends of both links send at most MBIT Mbit/s (tc tbf; exit 3
#                                      when the kernel has no tbf qdisc)
#   scripts/netns.sh cut TAG w1|w2|c   take a worker's link down, or both of the coordinator's
#   scripts/netns.sh restore TAG w1|w2|c
#   scripts/netns.sh down TAG          delete them (idempotent)
# TAG: 1-8 letters or digits (interface names stay within Linux's 15 characters).
set -uo pipefail
cmd=${1:-}; tag=${2:-}
fail() { echo "netns: $*" >&2; exit "${code:-1}"; }
[[ "$tag" =~ ^[a-z0-9]{1,8}$ ]] || fail "TAG must be 1-8 lowercase letters or digits (got '$tag')"
c=$tag-c
links() {  # the interfaces of the link(s) named by $1: "namespace interface" pairs
  case "$1" in
    w1) echo "$c $tag-c1"; echo "$tag-w1 $tag-w1" ;;
    w2) echo "$c $tag-c2"; echo "$tag-w2 $tag-w2" ;;
    c) echo "$c $tag-c1"; echo "$c $tag-c2" ;;
    *) fail "link must be w1, w2 or c (got '$1')" ;;
  esac
}
case "$cmd" in
  up)
    command -v ip >/dev/null || code=2 fail "the ip command is missing (Debian package iproute2)"
    [ "$(id -u)" = 0 ] || code=2 fail "network namespaces need root (this is uid $(id -u))"
    "$0" down "$tag" 2>/dev/null
    ip netns add "$c" 2>/tmp/netns-$tag.err || code=2 fail "cannot create a network namespace: $(cat /tmp/netns-$tag.err)"
    for i in 1 2; do
      w=$tag-w$i
      ip netns add "$w" || code=2 fail "cannot create namespace $w"
      ip link add "$tag-c$i" netns "$c" type veth peer name "$w" netns "$w" \
        || code=2 fail "cannot create a veth link (kernel without veth?)"
      ip -n "$c" addr add "10.77.$i.1/24" dev "$tag-c$i" && ip -n "$c" link set "$tag-c$i" up || fail "cannot address $tag-c$i"
      ip -n "$w" addr add "10.77.$i.2/24" dev "$w" && ip -n "$w" link set "$w" up && ip -n "$w" link set lo up \
        || fail "cannot address $w"
    done
    ip -n "$c" link set lo up
    for i in 1 2; do  # both links answer before anyone relies on them
      for _ in $(seq 50); do ip netns exec "$tag-w$i" ping -c1 -W1 "10.77.$i.1" >/dev/null 2>&1 && break; sleep 0.1; done
    done
    echo "netns: $c (10.77.1.1, 10.77.2.1), $tag-w1 (10.77.1.2), $tag-w2 (10.77.2.2) are up" >&2 ;;
  netem)
    delay=${NETEM_DELAY_MS:-20} jitter=${NETEM_JITTER_MS:-5} loss=${NETEM_LOSS_PCT:-1}
    [[ "$delay$jitter$loss" =~ ^[0-9.]+$ ]] || fail "NETEM_DELAY_MS, NETEM_JITTER_MS and NETEM_LOSS_PCT must be numbers"
    # The kernel's netem qdisc where it has one; otherwise the same delay and loss in user space
    # (scripts/netem-relay.py), the links' veth pairs replaced by TUN devices of the same names.
    probe=$(ip netns exec "$c" tc qdisc replace dev "$tag-c1" root netem delay ${delay}ms ${jitter}ms loss ${loss}% 2>&1)
    if [ $? -eq 0 ]; then
      for l in w1 w2; do
        while read -r ns dev; do
          out=$(ip netns exec "$ns" tc qdisc replace dev "$dev" root netem delay ${delay}ms ${jitter}ms loss ${loss}% 2>&1) \
            || code=3 fail "tc netem on $dev failed: $out"
        done < <(links $l)
      done
      echo "netns: $delay ms ± $jitter ms delay, $loss % loss on every link end (tc netem)" >&2
    else
      command -v python3 >/dev/null || code=3 fail "no netem qdisc ($probe) and no python3 for scripts/netem-relay.py"
      [ -c /dev/net/tun ] || code=3 fail "no netem qdisc ($probe) and no /dev/net/tun for scripts/netem-relay.py"
      for i in 1 2; do
        w=$tag-w$i
        ip -n "$c" link del "$tag-c$i" || fail "cannot delete the veth link $tag-c$i"
        ip -n "$c" tuntap add dev "$tag-c$i" mode tun && ip -n "$w" tuntap add dev "$w" mode tun \
          || code=3 fail "cannot create TUN devices (kernel without tun?)"
        ip -n "$c" addr add "10.77.$i.1" peer "10.77.$i.2" dev "$tag-c$i" && ip -n "$c" link set "$tag-c$i" up \
          && ip -n "$w" addr add "10.77.$i.2" peer "10.77.$i.1" dev "$w" && ip -n "$w" link set "$w" up \
          || fail "cannot address the TUN devices of link $i"
      done
      log=/tmp/netns-$tag.relay.log
      python3 "$(dirname "$0")/netem-relay.py" "$tag" "$delay" "$jitter" "$(awk "BEGIN { print $loss / 100 }")" >"$log" 2>&1 &
      echo $! >/tmp/netns-$tag.relay.pid
      for _ in $(seq 100); do grep -q ready "$log" 2>/dev/null && break; kill -0 "$!" 2>/dev/null || break; sleep 0.05; done
      grep -q ready "$log" || code=3 fail "scripts/netem-relay.py did not start: $(cat "$log")"
      for i in 1 2; do
        for _ in $(seq 50); do ip netns exec "$tag-w$i" ping -c1 -W1 "10.77.$i.1" >/dev/null 2>&1 && break; done
      done
      echo "netns: $delay ms ± $jitter ms delay, $loss % loss on every link, in user space (no netem qdisc: $probe)" >&2
    fi ;;
  rate)
    mbit=${3:-}
    [[ "$mbit" =~ ^[0-9]{1,5}$ ]] && [ "$mbit" -gt 0 ] || fail "rate must be a whole number of Mbit/s (got '$mbit')"
    for l in w1 w2; do
      while read -r ns dev; do
        out=$(ip netns exec "$ns" tc qdisc replace dev "$dev" root tbf rate "${mbit}mbit" burst 32kb latency 400ms 2>&1) \
          || code=3 fail "tc tbf on $dev failed: $out (the kernel has no sch_tbf)"
      done < <(links $l)
    done
    echo "netns: every link end sends at most $mbit Mbit/s" >&2 ;;
  cut|restore)
    state=$([ "$cmd" = cut ] && echo down || echo up)
    while read -r ns dev; do ip -n "$ns" link set "$dev" "$state" || fail "cannot set $dev $state"; done < <(links "${3:-}")
    echo "netns: link ${3:-} $state" >&2 ;;
  down)
    if [ -f /tmp/netns-$tag.relay.pid ]; then
      kill "$(cat /tmp/netns-$tag.relay.pid)" 2>/dev/null
      rm -f /tmp/netns-$tag.relay.pid /tmp/netns-$tag.relay.log
    fi
    for ns in "$c" "$tag-w1" "$tag-w2"; do
      if ip netns pids "$ns" >/dev/null 2>&1; then
        for p in $(ip netns pids "$ns"); do kill -9 "$p" 2>/dev/null; done
        ip netns del "$ns" 2>/dev/null
      fi
    done
    rm -f /tmp/netns-$tag.err ;;
  *) fail "usage: scripts/netns.sh up|netem|rate|cut|restore|down TAG [w1|w2|c|MBIT]" ;;
esac
