#!/usr/bin/env bash
# Apache Kafka (KRaft, one node that is broker and controller at once) on 127.0.0.1:9092 for
# the Kafka queue tests. Sourced by .ci/run after services.sh; a developer runs it the same way:
#   bash .ci/kafka.sh
# The jars come from Maven Central through `mvn dependency:copy-dependencies` into a cache
# outside the repository; data and logs live beside them. A broker already listening is reused.
# Override the place with PUSH_KAFKA_HOME, the version with PUSH_KAFKA_VERSION.
set -euo pipefail

kafka_version=${PUSH_KAFKA_VERSION:-4.4.0}
kafka_home=${PUSH_KAFKA_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/message-push/kafka-$kafka_version}
kafka_port=9092
kafka_controller_port=9093
kafka_started=$SECONDS

kafka_port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

echo "== Kafka $kafka_version (KRaft) in $kafka_home"
mkdir -p "$kafka_home"

if ! kafka_port_open "$kafka_port"; then
  # A throwaway pom: the broker (kafka_2.13) and the command-line tools with their runtime
  # dependencies, plus log4j-core and the binding of Kafka's slf4j 1.7 so the broker writes a log.
  # The jars are fetched again only when this pom changes.
  kafka_pom=$(cat <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.message-push</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$kafka_version</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$kafka_version</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>2.24.3</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>2.24.3</version></dependency>
  </dependencies>
</project>
POM
)
  if [ ! -f "$kafka_home/libs/.complete" ] || [ "$(cat "$kafka_home/pom.xml" 2>/dev/null)" != "$kafka_pom" ]; then
    printf '%s\n' "$kafka_pom" >"$kafka_home/pom.xml"
    rm -rf "$kafka_home/libs"
    mvn -q -B -Dstyle.color=never -f "$kafka_home/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$kafka_home/libs"
    touch "$kafka_home/libs/.complete"
    echo "   jars fetched in $((SECONDS - kafka_started)) s"
  fi

  cat >"$kafka_home/log4j2.properties" <<'LOG'
appender.file.type = File
appender.file.name = file
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
LOG

  mkdir -p "$kafka_home/logs"
  cat >"$kafka_home/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$kafka_controller_port
listeners=PLAINTEXT://127.0.0.1:$kafka_port,CONTROLLER://127.0.0.1:$kafka_controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$kafka_port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$kafka_home/data
num.partitions=4
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
log.retention.hours=24
PROPS

  kafka_java=(java -Xms128m -Xmx384m -XX:+UseG1GC -XX:MaxGCPauseMillis=20
    -Djava.awt.headless=true -Dkafka.logs.dir="$kafka_home/logs"
    -Dlog4j2.configurationFile="$kafka_home/log4j2.properties"
    -cp "$kafka_home/libs/*")

  # KRaft needs its storage formatted once with a cluster id; a formatted directory is kept.
  if [ ! -f "$kafka_home/data/meta.properties" ]; then
    "${kafka_java[@]}" kafka.tools.StorageTool format \
      -t "$("${kafka_java[@]}" kafka.tools.StorageTool random-uuid)" \
      -c "$kafka_home/server.properties" >"$kafka_home/logs/format.log" 2>&1 \
      || { cat "$kafka_home/logs/format.log" >&2; exit 1; }
  fi

  nohup "${kafka_java[@]}" kafka.Kafka "$kafka_home/server.properties" \
    >"$kafka_home/logs/stdout.log" 2>&1 </dev/null &
  echo $! >"$kafka_home/kafka.pid"
  disown || true
fi

# Ready means a topic can be created (the port opens before the controller has elected itself).
kafka_ready=""
for _ in $(seq 1 120); do
  if kafka_port_open "$kafka_port" && java -Xmx128m -cp "$kafka_home/libs/*" \
    -Dlog4j2.configurationFile="$kafka_home/log4j2.properties" -Dkafka.logs.dir="$kafka_home/logs" \
    org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$kafka_port" \
    --create --if-not-exists --topic message-push.ready-check --partitions 1 \
    --replication-factor 1 >/dev/null 2>&1; then
    kafka_ready=1
    break
  fi
  sleep 1
done
if [ -z "$kafka_ready" ]; then
  echo "!! Kafka did not accept a topic creation; its log: $kafka_home/logs" >&2
  tail -n 40 "$kafka_home/logs/stdout.log" "$kafka_home/logs/server.log" >&2 2>/dev/null || true
  exit 1
fi
echo "   Kafka ready on 127.0.0.1:$kafka_port after $((SECONDS - kafka_started)) s"
export PUSH_TEST_KAFKA_URL="kafka://127.0.0.1:$kafka_port"
