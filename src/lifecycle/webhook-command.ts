import type { Config } from '../config.js';
import { parseDuration } from '../config.js';
import { createStore } from '../store/create-store.js';
import { Webhooks } from './webhooks.js';

export const WEBHOOK_USAGE =
  'message-push webhook set <app-id> --url U [--after 30s] | get <app-id> | rotate <app-id> | delete <app-id>';

/**
 * `message-push webhook …`: the app's offline hand-off webhook, straight on the store (the
 * same rules as PUT /v1/webhook; `rotate` replaces the signing secret and prints it).
 */
export async function webhookCommand(
  config: Config,
  sub: string | undefined,
  appId: string | undefined,
  values: { url?: string; after?: string },
): Promise<number> {
  if (!appId || !['set', 'get', 'rotate', 'delete'].includes(sub ?? '')) throw new Error(WEBHOOK_USAGE);
  const store = await createStore(config.store);
  try {
    if (!(await store.getApp(appId))) throw new Error(`no app "${appId}"`);
    const hooks = new Webhooks(store, config.lifecycle.webhookAllowPrivate);
    const current = await hooks.get(appId);
    let shown = current;
    if (sub === 'delete') {
      await hooks.delete(appId);
      console.log(current ? `webhook of "${appId}" deleted` : `app "${appId}" had no webhook`);
      return 0;
    }
    if (sub === 'set' || sub === 'rotate') {
      const url = values.url ?? current?.url;
      if (!url) throw new Error('webhook set: --url is required');
      const afterMs = values.after !== undefined ? parseDuration(values.after) : current?.after_ms;
      shown = await hooks.set(appId, {
        url,
        ...(afterMs !== undefined ? { afterMs } : {}),
        ...(sub === 'rotate' ? { rotateSecret: true } : {}),
      });
    }
    if (!shown) {
      console.error(`app "${appId}" has no webhook`);
      return 1;
    }
    console.log(`url:      ${shown.url}\nafter_ms: ${shown.after_ms}\nsecret:   ${shown.secret}`);
    return 0;
  } finally {
    await store.close();
  }
}
