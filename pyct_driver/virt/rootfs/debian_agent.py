"""The first-boot agent baked into the Debian image, as file contents.

cloud-init costs seconds of Python start-up per boot; a pyct guest boots in
well under one, so the image carries this small equivalent instead: a bash
script run by a oneshot unit ordered before ``ssh.service``. It reads the
instance's metadata from, in order, the NoCloud seed directory
(``/var/lib/cloud/seed/nocloud-net``: ``meta-data``, JSON or simple YAML,
with ``instance-id``, ``local-hostname`` and ``public-keys``; ``user-data``;
``network-config`` version 2 as JSON), the config drive
(``/mnt/config/openstack/latest``: ``meta_data.json``, ``user_data``,
``network_data.json``) or the metadata service at 169.254.169.254 (same
files over HTTP, tried only when a route to it exists). It sets the
hostname, writes ``/etc/resolv.conf`` from the network's DNS servers (the
``dns`` services of ``network_data.json``, or the seed's ``nameservers``;
a resolv.conf that is a symlink belongs to a resolver the guest runs and
is left alone), installs
the public keys in ``/root/.ssh/authorized_keys``, creates the instance's
own ed25519 host key (a new instance-id, e.g. a server booted from a
snapshot, gets a new one) and prints its fingerprint to the console the way
cloud-init does, so a client can pin it. User data starting with ``#!`` is
run once per instance-id by a second unit that does not hold up boot.
``FILES`` maps image paths to (mode, text).
"""

from __future__ import annotations

AGENT_PATH = "usr/lib/pyct/pyct-agent"
AGENT_UNIT = "pyct-agent.service"
USERDATA_UNIT = "pyct-userdata.service"

_AGENT = r"""#!/bin/bash
# pyct first-boot agent: hostname, DNS, SSH keys, host key, user data.
set -u
STATE=/var/lib/pyct-agent
SEED=/var/lib/cloud/seed/nocloud-net
DRIVE=/mnt/config/openstack/latest
MDS=169.254.169.254
umask 022
mkdir -p "$STATE"

log() { echo "pyct-agent: $*"; }

http_get() {  # path -> body on stdout; fails on anything but 200
    exec 3<>"/dev/tcp/$MDS/80" || return 1
    printf 'GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n' \
        "$1" "$MDS" >&3
    local reply
    reply=$(cat <&3; printf x) || return 1
    reply=${reply%x}
    case "${reply%%$'\r'*}" in HTTP/1.?\ 200*) ;; *) return 1 ;; esac
    printf '%s' "${reply#*$'\r\n\r\n'}"
}

if [ "${1:-}" = --http-get ]; then http_get "$2"; exit; fi

fetch_md() {  # fill $STATE/current/{meta.json or meta-data,user-data,net}
    local cur=$STATE/current
    rm -rf "$cur"; mkdir -p "$cur"; chmod 700 "$cur"
    if [ -f "$SEED/meta-data" ]; then
        cp "$SEED/meta-data" "$cur/meta-data"
        [ -f "$SEED/user-data" ] && cp "$SEED/user-data" "$cur/user-data"
        [ -f "$SEED/network-config" ] && cp "$SEED/network-config" "$cur/net"
        echo nocloud
    elif [ -f "$DRIVE/meta_data.json" ]; then
        cp "$DRIVE/meta_data.json" "$cur/meta.json"
        [ -f "$DRIVE/user_data" ] && cp "$DRIVE/user_data" "$cur/user-data"
        [ -f "$DRIVE/network_data.json" ] &&
            cp "$DRIVE/network_data.json" "$cur/net"
        echo configdrive
    elif ip -4 route get "$MDS" >/dev/null 2>&1 &&
         timeout 5 "$0" --http-get /openstack/latest/meta_data.json \
            > "$cur/meta.json" 2>/dev/null; then
        timeout 5 "$0" --http-get /openstack/latest/user_data \
            > "$cur/user-data" 2>/dev/null || rm -f "$cur/user-data"
        timeout 5 "$0" --http-get /openstack/latest/network_data.json \
            > "$cur/net" 2>/dev/null || rm -f "$cur/net"
        echo metadata-service
    else
        echo none
    fi
}

yaml_value() {  # key file -> scalar value of a top-level "key: value"
    sed -n "s/^$1:[[:space:]]*//p" "$2" | head -n1 |
        sed -e 's/[[:space:]]*$//' -e "s/^[\"']//" -e "s/[\"']\$//"
}

yaml_list() {  # key file -> items of a top-level block list "key:\n - x"
    awk -v key="$1:" '
        $0 ~ "^"key { inlist = 1; next }
        inlist && /^[[:space:]]*-[[:space:]]/ {
            sub(/^[[:space:]]*-[[:space:]]*/, "")
            gsub(/^["'\'']|["'\'']$/, "")
            print; next }
        inlist && /^[^[:space:]]/ { inlist = 0 }' "$2"
}

source=$(fetch_md)
cur=$STATE/current
iid="" host="" keys="" dns=""
case "$source" in
nocloud)
    md=$cur/meta-data
    if jq -e 'type == "object"' "$md" >/dev/null 2>&1; then
        # JSON is YAML too; pyct's own seed is written as JSON
        iid=$(jq -r '.["instance-id"] // empty' "$md")
        host=$(jq -r '.["local-hostname"] // .hostname // empty' "$md")
        keys=$(jq -r '(.["public-keys"] // []) | .[] | strings' "$md")
    else
        iid=$(yaml_value instance-id "$md")
        host=$(yaml_value local-hostname "$md")
        keys=$(yaml_list public-keys "$md")
    fi
    # network-config version 2 (pyct's is JSON)
    dns=$(jq -r '(.ethernets // {}) | .[] | (.nameservers.addresses // [])
                 | .[] | strings' "$cur/net" 2>/dev/null)
    ;;
configdrive|metadata-service)
    iid=$(jq -r '.uuid // empty' "$cur/meta.json")
    host=$(jq -r '.hostname // .name // empty' "$cur/meta.json")
    keys=$(jq -r '(.public_keys // {}) | .[]' "$cur/meta.json")
    dns=$(jq -r '(.services // []) | .[] | select(.type == "dns")
                 | .address | strings' "$cur/net" 2>/dev/null)
    ;;
esac
if [ -f "$cur/user-data" ] &&
        head -n1 "$cur/user-data" | grep -q '^#cloud-config'; then
    keys=$(printf '%s\n%s\n' "$keys" \
        "$(yaml_list ssh_authorized_keys "$cur/user-data")")
fi
log "metadata source: $source, instance-id: ${iid:-unknown}"

old_iid=$(cat "$STATE/instance-id" 2>/dev/null || true)
if [ -n "$iid" ] && [ "$iid" != "$old_iid" ]; then
    # a new instance (or a snapshot booted as one): its own host key
    rm -f /etc/ssh/ssh_host_*
    printf '%s\n' "$iid" > "$STATE/instance-id"
fi

if [ -n "$host" ]; then
    host=${host%%.*}
    printf '%s\n' "$host" > /etc/hostname
    hostname "$host"
    if grep -q '^127\.0\.1\.1[[:space:]]' /etc/hosts; then
        sed -i "s/^127\.0\.1\.1[[:space:]].*/127.0.1.1\t$host/" /etc/hosts
    else
        printf '127.0.1.1\t%s\n' "$host" >> /etc/hosts
    fi
fi

# as a DHCP client would: the network's resolvers (addresses only, 3 at most)
dns=$(printf '%s\n' "$dns" |
      awk '/^[0-9A-Fa-f:.]+$/ && !seen[$0]++ && n++ < 3 { print }')
if [ -n "$dns" ] && [ ! -L /etc/resolv.conf ]; then
    printf 'nameserver %s\n' $dns > /etc/resolv.conf.pyct-agent &&
        mv /etc/resolv.conf.pyct-agent /etc/resolv.conf
    log "nameservers:" $dns
fi

if [ -n "$(printf '%s' "$keys" | tr -d '[:space:]')" ]; then
    install -d -m 700 /root/.ssh
    touch /root/.ssh/authorized_keys
    chmod 600 /root/.ssh/authorized_keys
    printf '%s\n' "$keys" | while IFS= read -r key; do
        [ -n "$key" ] || continue
        grep -qxF -- "$key" /root/.ssh/authorized_keys ||
            printf '%s\n' "$key" >> /root/.ssh/authorized_keys
    done
fi

if [ ! -s /etc/ssh/ssh_host_ed25519_key ]; then
    ssh-keygen -q -t ed25519 -N '' -C "root@${host:-$(hostname)}" \
        -f /etc/ssh/ssh_host_ed25519_key
fi
{
    echo "-----BEGIN SSH HOST KEY FINGERPRINTS-----"
    ssh-keygen -l -f /etc/ssh/ssh_host_ed25519_key.pub
    echo "-----END SSH HOST KEY FINGERPRINTS-----"
    echo "-----BEGIN SSH HOST KEY KEYS-----"
    cat /etc/ssh/ssh_host_ed25519_key.pub
    echo "-----END SSH HOST KEY KEYS-----"
} > /dev/console 2>&1 || true

if [ -n "$iid" ] && [ -f "$cur/user-data" ] &&
   head -c2 "$cur/user-data" | grep -q '^#!' &&
   [ ! -e "$STATE/user-data-done.$iid" ]; then
    install -m 700 "$cur/user-data" "$STATE/user-data.$iid"
    ln -sfn "user-data.$iid" "$STATE/user-data-pending"
fi
exit 0
"""

_USERDATA = r"""#!/bin/bash
# Run the pending user-data script once per instance; logged to the console.
set -u
STATE=/var/lib/pyct-agent
pending=$STATE/user-data-pending
[ -L "$pending" ] || exit 0
script=$STATE/$(readlink "$pending")
iid=${script##*/user-data.}
# mark first: "once" must hold even if the script reboots the guest
touch "$STATE/user-data-done.$iid"
rm -f "$pending"
echo "pyct-agent: running user data for $iid"
"$script"
echo "pyct-agent: user data exited $?"
"""

_AGENT_UNIT = f"""[Unit]
Description=pyct agent: hostname, DNS, SSH keys and host key from metadata
After=local-fs.target network.target
Before=ssh.service systemd-user-sessions.service {USERDATA_UNIT}
ConditionPathExists=/{AGENT_PATH}

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/{AGENT_PATH}
TimeoutStartSec=60
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
"""

_USERDATA_UNIT = f"""[Unit]
Description=pyct agent: run user data once per instance
After={AGENT_UNIT} network.target
ConditionPathIsSymbolicLink=/var/lib/pyct-agent/user-data-pending

[Service]
# not a oneshot: a long user script must not hold up multi-user.target
Type=exec
ExecStart=/usr/lib/pyct/pyct-userdata
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
"""

_SSHD = """\
# pyct: per-instance ed25519 host key made by pyct-agent; keys only.
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
"""

FILES: dict[str, tuple[int, str]] = {
    AGENT_PATH: (0o755, _AGENT),
    "usr/lib/pyct/pyct-userdata": (0o755, _USERDATA),
    f"etc/systemd/system/{AGENT_UNIT}": (0o644, _AGENT_UNIT),
    f"etc/systemd/system/{USERDATA_UNIT}": (0o644, _USERDATA_UNIT),
    "etc/ssh/sshd_config.d/50-pyct.conf": (0o644, _SSHD),
}

ENABLE = {AGENT_UNIT: "multi-user.target", USERDATA_UNIT: "multi-user.target"}
