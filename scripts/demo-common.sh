# Shared by scripts/demo.sh and scripts/demo-ha.sh (sourced): how they speak and wait, and the
# demo agents' tokens. Needs $pace.

bold=$'\e[1m' reset=$'\e[0m'
[[ -t 1 ]] || { bold='' reset=''; }
# say TEXT: one step of the tour, in bold between blank lines.
say() { printf '\n%s==> %s%s\n\n' "$bold" "$*" "$reset"; }
# pause SECONDS: waits SECONDS times DEMO_PACE.
pause() { sleep "$(awk "BEGIN { print $1 * $pace }")"; }
# port_taken PORT: something already accepts connections on 127.0.0.1:PORT.
port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

read_token=demo-read-token-0123456789
control_token=demo-control-token-0123456789
