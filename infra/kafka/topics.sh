#!/bin/sh
# Creates the NEXO ROUTE topics (the `kafka-init` one-shot service in docker-compose.yml runs
# this against the broker; production runs it once per cluster with a replication factor of 3).
# Idempotent: existing topics are left exactly as they are.
#
# Partition counts are fixed on purpose. Kafka maps a key to a partition by hash modulo the
# partition count, so adding partitions to a live topic moves keys: per-phone order and the
# single owner of the 30 s per-phone limit (I8) would break for messages in flight. Size the
# counts for the largest consumer group you expect (one partition per consumer at most) and,
# to grow, drain the topic first.
#
# Environment:
#   TOPICS_BOOTSTRAP           broker list                        (default kafka:9092)
#   TOPICS_REPLICATION_FACTOR  replicas per partition             (default 1, the dev single node)
#   TOPICS_PARTITIONS          partitions of the keyed hot topics (default 12)
#   KAFKA_TOPICS_BIN           the kafka-topics tool              (default /opt/kafka/bin/kafka-topics.sh)
# (Not KAFKA_*: the apache/kafka image reads those as broker settings.)
set -eu

BOOTSTRAP="${TOPICS_BOOTSTRAP:-kafka:9092}"
RF="${TOPICS_REPLICATION_FACTOR:-1}"
PARTITIONS="${TOPICS_PARTITIONS:-12}"
TOPICS_BIN="${KAFKA_TOPICS_BIN:-/opt/kafka/bin/kafka-topics.sh}"

# A write is acknowledged by two replicas where there are at least three; a single dev node can only ask for one.
if [ "$RF" -ge 3 ]; then MIN_ISR=2; else MIN_ISR=1; fi

DAY_MS=86400000

attempt=0
until "$TOPICS_BIN" --bootstrap-server "$BOOTSTRAP" --list >/dev/null 2>&1; do
  attempt=$((attempt + 1))
  if [ "$attempt" -ge 30 ]; then
    echo "topics.sh: broker $BOOTSTRAP not reachable after $attempt tries" >&2
    exit 1
  fi
  sleep 2
done

# create NAME PARTITIONS RETENTION_MS
create() {
  "$TOPICS_BIN" --bootstrap-server "$BOOTSTRAP" --create --if-not-exists \
    --topic "$1" \
    --partitions "$2" \
    --replication-factor "$RF" \
    --config "retention.ms=$3" \
    --config cleanup.policy=delete \
    --config "min.insync.replicas=$MIN_ISR" \
    --config compression.type=producer
  echo "topics.sh: $1 ready (partitions=$2 replication=$RF retention.ms=$3)"
}

# OtpRequested for the dispatcher. Key: phoneHash — all sends to one phone land on one
# partition, in order, with a single consumer that can enforce 1 submission per 30 s (I8).
create nexo.otp.dispatch "$PARTITIONS" $((7 * DAY_MS))

# Normalized delivery receipts from HTTP callbacks and SMPP deliver_sm. Key: the provider's
# message id (a receipt often carries nothing else until it is matched to its OTP) — the
# receipts of one message are applied in arrival order.
create nexo.otp.receipts "$PARTITIONS" $((7 * DAY_MS))

# Settlement commands (deliver / refund). Key: accountId — one writer per account stream, so
# appends to the hot account stream do not race each other into revision conflicts.
create nexo.settlement "$PARTITIONS" $((7 * DAY_MS))

# OTP status changes for customers' webhooks. Key: accountId — a customer receives its events
# in order. Retention outlives the 24 h retry promise with a margin for an outage.
create nexo.webhooks "$PARTITIONS" $((7 * DAY_MS))

# ERC-20 transfers to deposit addresses. Key: the chain (`chain-<id>`) — a chain's transfers are
# credited and, after a reorg, reversed in chain order, so each chain uses one partition. Low volume;
# kept a month so a deposit can be re-examined while the chain is still within anyone's reorg horizon and beyond.
create nexo.chain.transfers 3 $((30 * DAY_MS))
