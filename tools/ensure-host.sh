#!/usr/bin/env bash
# Make a Debian host ready for pyct's test suite: kernel tools and the
# services the integration tests talk to (PostgreSQL, MariaDB, RabbitMQ).
# Uses what is already installed and running; installs and starts the rest.
set -euo pipefail

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

need_pkgs=()
# lxcfs: the guests' flavor views (one per host, started by pyct-compute;
# the package's own systemd unit, where there is systemd, is not used)
for tool in busybox:busybox-static mkfs.ext4:e2fsprogs losetup:mount \
            nsenter:util-linux ip:iproute2 debootstrap:debootstrap \
            ssh-keygen:openssh-client lxcfs:lxcfs runc:runc; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || [[ -x /bin/${tool%%:*} ]] \
    || need_pkgs+=("${tool#*:}")
done
# nf_tables through libnftables' JSON API (virt/network/nft.py loads
# Debian's binding from dist-packages, outside the venv)
[[ -f /usr/lib/python3/dist-packages/nftables/nftables.py ]] \
  || need_pkgs+=(python3-nftables)
command -v nft >/dev/null 2>&1 || need_pkgs+=(nftables)
listening 5432 || command -v pg_ctlcluster >/dev/null || need_pkgs+=(postgresql)
listening 3306 || command -v mariadbd >/dev/null || need_pkgs+=(mariadb-server)
listening 5672 || command -v rabbitmq-server >/dev/null || need_pkgs+=(rabbitmq-server)

if ((${#need_pkgs[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "ensure-host: missing ${need_pkgs[*]} and not root" >&2; exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d: let us start services ourselves, the same way everywhere
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

wait_port() {
  for _ in $(seq 1 60); do listening "$1" && return 0; sleep 1; done
  echo "ensure-host: nothing listens on 127.0.0.1:$1" >&2; return 1
}

if ! listening 5432; then
  ver=$(ls /etc/postgresql | sort -V | tail -n1)
  hba=/etc/postgresql/$ver/main/pg_hba.conf
  # tests connect over TCP as postgres without a password (trust)
  grep -q '^host all all 127.0.0.1/32 trust' "$hba" || \
    sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start
  wait_port 5432
fi
if ! listening 3306; then
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
  wait_port 3306
  # tests log in as root over TCP with an empty password
  mariadb -uroot -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD(''); FLUSH PRIVILEGES;" 2>/dev/null || true
fi
if ! listening 5672; then
  rabbitmq-server -detached
  wait_port 5672
fi
# The kernel settings of a pyct host (shared pools sized so that a guest's
# own limits bind first); only ever raised, never lowered.
if [[ $(id -u) -eq 0 ]]; then
  conf=$(dirname "$0")/../etc/sysctl.d/60-pyct.conf
  while IFS='=' read -r key value; do
    key=$(echo "$key" | tr -d ' '); value=$(echo "$value" | tr -d ' ')
    [[ -z $key || $key == \#* ]] && continue
    path=/proc/sys/${key//.//}
    if [[ -w $path ]] && (( $(cat "$path") < value )); then
      echo "$value" > "$path"
    fi
  done < "$conf"
fi
echo "ensure-host: kernel tools, sysctls, PostgreSQL, MariaDB and RabbitMQ ready"
