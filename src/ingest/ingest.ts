import type { Router } from '../delivery/router.js';
import { PushError } from '../domain/errors.js';
import { newMessageId } from '../domain/ids.js';
import {
  fingerprintPush,
  type PushRequest,
  type PushResult,
  recipientsOf,
  topicOf,
} from '../domain/message.js';
import type { Metrics } from '../observability/metrics.js';
import { GroupCommit } from '../store/group-commit.js';
import type { MessageStore, PersistItem, PersistOutcome } from '../store/store.js';
import type { GroupPusher } from './group-push.js';

/** Who is connected right now (on any node), as far as ttl-0 pushes and topic recipient counts need to know. */
export interface Audience {
  onlineAmong(appId: string, users: readonly string[]): Promise<Set<string>>;
  countTopicConnections(appId: string, topic: string): Promise<number>;
}

/**
 * The single way into the system for a validated push, from HTTP or a queue:
 * dedupe by id, persist (group commit), then route. A push resolves only once durable.
 */
export class Ingest {
  private readonly commit: GroupCommit<PersistItem, PersistOutcome>;
  /** Set by the composition root: `to.groups` pushes are written in batches there. */
  groups: GroupPusher | null = null;

  constructor(
    store: MessageStore,
    private readonly router: Router,
    private readonly audience: Audience,
    private readonly metrics: Metrics,
  ) {
    this.commit = new GroupCommit((items) => store.persistPushes(items), 1000);
  }

  async push(appId: string, request: PushRequest, source = 'http'): Promise<PushResult> {
    if ('groups' in request.to && this.groups)
      return this.pushToGroups(appId, request, request.to.groups, source);
    const topic = topicOf(request.to);
    const users = recipientsOf(request.to).map((r) => r.user);
    const online = request.ttl === 0 ? await this.audience.onlineAmong(appId, users) : null;
    // `recipients` in the reply: users targeted, or for a topic the connections it is handed to.
    const recipients =
      topic === null ? users.length : await this.audience.countTopicConnections(appId, topic);
    const outcome = await this.commit.submit({
      appId,
      request,
      // Only a client-chosen id can be repeated; a generated one's fingerprint is never compared.
      fingerprint: request.id === null ? '' : fingerprintPush(request),
      messageId: request.id ?? newMessageId(),
      timestamp: Date.now(),
      onlineUsers: online,
      connectionCount: recipients,
    });
    switch (outcome.kind) {
      case 'stored':
        this.metrics.messagesAccepted.inc({ source });
        this.router.routeStored(outcome.message, outcome.recipients);
        return { id: outcome.message.id, recipients, duplicate: false };
      case 'duplicate':
        this.metrics.duplicates.inc();
        return { id: outcome.id, recipients: outcome.recipients, duplicate: true };
      case 'conflict':
        throw new PushError('conflict', `message id "${outcome.id}" was already used with a different body`);
    }
  }

  private async pushToGroups(
    appId: string,
    request: PushRequest,
    groups: readonly string[],
    source: string,
  ): Promise<PushResult> {
    const result = await this.groups!.push(
      {
        appId,
        request,
        fingerprint: request.id === null ? '' : fingerprintPush(request),
        messageId: request.id ?? newMessageId(),
        timestamp: Date.now(),
        onlineUsers: null,
        connectionCount: 0,
      },
      groups,
    );
    if (result.duplicate) this.metrics.duplicates.inc();
    else this.metrics.messagesAccepted.inc({ source });
    return result;
  }
}
