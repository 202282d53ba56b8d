import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { AppRegistry } from '../../auth/app-registry.js';
import type { GroupStore } from '../../store/group-store.js';
import { tagged } from '../schemas.js';
import { ERROR_RESPONSES } from './groups.js';
import { basicAuth } from './push.js';

export interface RoomRouteDeps {
  readonly apps: AppRegistry;
  readonly store: GroupStore;
  /** Tells every node (this one included) that a room's settings changed. */
  readonly announce: (appId: string, topic: string, mergeMs: number) => void;
}

export const MAX_MERGE_MS = 5_000;

const TopicParams = Type.Object({ topic: Type.String({ pattern: '^[A-Za-z0-9._:-]{1,128}$' }) });
const SettingsBody = Type.Object(
  { merge_ms: Type.Integer({ minimum: 0, maximum: MAX_MERGE_MS }) },
  { additionalProperties: false },
);
const SettingsReply = Type.Object({ topic: Type.String(), merge_ms: Type.Integer() });

/**
 * Live-room settings (server API, Basic auth):
 *
 *   PUT /v1/topics/{topic}/settings {"merge_ms":n}   (0..5000, 0 = off) → {"topic","merge_ms"}
 *
 * Stored first (they survive restarts and hold for nodes started later), then announced on
 * the bus so running nodes switch at once.
 */
export function registerRoomRoutes(app: FastifyInstance, deps: RoomRouteDeps): void {
  const preHandler = basicAuth(deps.apps);
  app.put(
    '/v1/topics/:topic/settings',
    {
      preHandler,
      schema: tagged('server', "Set a live room's merge window", {
        params: TopicParams,
        body: SettingsBody,
        response: { 200: SettingsReply, ...ERROR_RESPONSES },
      }),
    },
    async (req) => {
      const { topic } = req.params as { topic: string };
      const { merge_ms } = req.body as { merge_ms: number };
      await deps.store.saveTopicSettings(req.appId, topic, merge_ms);
      deps.announce(req.appId, topic, merge_ms);
      return { topic, merge_ms };
    },
  );
}
