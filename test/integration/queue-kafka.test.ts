import { queueBroker } from '../contract/queue-brokers.js';
import { queueContract } from '../contract/queue-contract.js';
import { describeWithServices } from '../helpers/services.js';

/**
 * Kafka queue ingress against a real broker (`bash .ci/kafka.sh` starts one on 127.0.0.1:9092).
 * The contract's kill -9 test runs at the size the issue asks for: 10,000 messages to 100
 * acking clients.
 */
await describeWithServices(['kafka', 'mysql'], 'Kafka queue ingress: queue contract', ([url]) => {
  queueContract(queueBroker('kafka', url!), { crash: { users: 100, perUser: 100 } });
});
