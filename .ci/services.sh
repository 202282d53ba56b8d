#!/usr/bin/env bash
# Makes sure the real backends the integration suites use are installed and running on
# loopback: reuses running ones, starts installed-but-stopped ones, apt-installs missing ones.
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 name=$2
  for _ in $(seq 1 90); do
    port_open "$port" && return 0
    sleep 1
  done
  echo "!! $name did not open port $port" >&2
  return 1
}

apt_updated=""
ensure_installed() {
  local binary=$1 package=$2
  if [ ! -x "$binary" ]; then
    [ -n "$apt_updated" ] || { apt-get update -qq; apt_updated=1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null
  fi
}

echo "== MariaDB"
ensure_installed /usr/sbin/mariadbd mariadb-server
if ! port_open 3306; then
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
fi
wait_port 3306 MariaDB
# A dedicated account: root may use socket auth on a fresh install.
mariadb -uroot -e "CREATE USER IF NOT EXISTS 'push'@'127.0.0.1' IDENTIFIED BY 'push';
  CREATE USER IF NOT EXISTS 'push'@'localhost' IDENTIFIED BY 'push';
  GRANT ALL PRIVILEGES ON *.* TO 'push'@'127.0.0.1'; GRANT ALL PRIVILEGES ON *.* TO 'push'@'localhost';
  CREATE DATABASE IF NOT EXISTS message_push_test;"
export PUSH_TEST_MYSQL_URL="mysql://push:push@127.0.0.1:3306/message_push_test"

echo "== Redis"
ensure_installed /usr/bin/redis-server redis-server
if ! port_open 6379; then
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi
wait_port 6379 Redis

echo "== NATS (JetStream)"
ensure_installed /usr/sbin/nats-server nats-server
if ! port_open 4222; then
  mkdir -p /var/lib/nats-server
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
fi
wait_port 4222 NATS

echo "== RabbitMQ"
ensure_installed /usr/sbin/rabbitmq-server rabbitmq-server
if ! port_open 5672; then
  rabbitmq-server -detached
fi
wait_port 5672 RabbitMQ

echo "== openssl and socat (TLS suites: certificates made in the test, a TLS endpoint in front of RabbitMQ)"
ensure_installed /usr/bin/openssl openssl
ensure_installed /usr/bin/socat socat

echo "== haproxy (the cluster tests run it in the foreground with deploy/haproxy.cfg)"
ensure_installed /usr/sbin/haproxy haproxy
# sed, not head: head exits after one line and pipefail turns the SIGPIPE into a failed run.
/usr/sbin/haproxy -v | sed -n 1p
