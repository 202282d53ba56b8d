// The demo page: gets a token for the app `demo`, connects with the SDK from /client.js,
// shows messages as they arrive, and pushes through the server's demo endpoint.
import type * as Sdk from '../../client/src/index.js';

declare global {
  interface Window {
    MessagePush: typeof Sdk;
    /** For the browser tests: the client and what it handed to the page. */
    demo?: {
      client: Sdk.PushClient;
      received: Sdk.PushMessage[];
      /** Recalls (`revoke` events) and read cursors from the user's other devices (`read` events). */
      revoked: Sdk.RevokeEvent[];
      reads: number[];
    };
  }
}

const TOPIC = 'demo:news';
const $ = <T extends HTMLElement>(sel: string) => document.querySelector(sel) as T;

async function mintToken(user: string | null): Promise<{ user: string; token: string } | null> {
  const res = await fetch('/v1/demo/token', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(user ? { user } : {}),
  });
  if (res.status === 404 || res.status === 403) return null;
  if (!res.ok) throw new Error(`token: HTTP ${res.status}`);
  return res.json();
}

function start(options: Sdk.ConnectOptions, user: string): Sdk.PushClient {
  const received: Sdk.PushMessage[] = [];
  const revoked: Sdk.RevokeEvent[] = [];
  const reads: number[] = [];
  // `?protocol=v2` switches the WebSocket to the binary protocol (push.v2.bin).
  const protocol = new URLSearchParams(location.search).get('protocol') === 'v2' ? 'v2' : 'v1';
  const client = window.MessagePush.connect({ ...options, protocol });
  window.demo = { client, received, revoked, reads };
  $('#identity').innerHTML = '';
  $('#identity').append(
    'Signed in as ',
    code(user),
    ' in app ',
    code(options.app),
    ` (protocol ${protocol})`,
  );
  client.on('state', ({ state }) => showState(state, client));
  client.on('connected', ({ transport }) => showState('connected', client, transport));
  client.on('error', (e) => {
    if (e.fatal) $('#status').textContent = `closed: ${e.code}`;
    $('#reconnect').hidden = !e.fatal;
  });
  client.on('message', (m) => {
    received.push(m);
    render(m);
    showUnread();
  });
  // A recalled message stays in the list, struck through, so the demo shows what happened.
  client.on('revoke', (e) => {
    revoked.push(e);
    const li = document.querySelector<HTMLElement>(`li.message[data-id="${CSS.escape(e.id)}"]`);
    if (li) {
      li.classList.add('revoked');
      li.querySelector('.where')!.textContent += ' recalled';
    }
    showUnread();
  });
  // Another device of this user read up to `seq`: clear the unread marks here too.
  client.on('read', ({ seq }) => {
    reads.push(seq);
    readUpTo = Math.max(readUpTo, seq);
    showUnread();
  });
  $('#mark-read').onclick = () => {
    const seq = client.lastSeq;
    if (seq !== null && client.read(seq)) {
      readUpTo = Math.max(readUpTo, seq);
      showUnread();
    }
  };
  // Topic messages arrive through `message` as well; subscribing asks the server for them.
  client.subscribe(TOPIC, () => {});
  $('#reconnect').onclick = () => {
    $('#reconnect').hidden = true;
    client.reconnect();
  };
  return client;
}

/** Newest user seq read on any of this user's devices (this page's own reads included). */
let readUpTo = 0;

function showUnread(): void {
  let unread = 0;
  for (const li of document.querySelectorAll<HTMLElement>('li.message[data-seq]')) {
    const isUnread = Number(li.dataset.seq) > readUpTo && !li.classList.contains('revoked');
    li.classList.toggle('unread', isUnread);
    if (isUnread) unread++;
  }
  $('#unread').textContent = String(unread);
  $('#unread').dataset.count = String(unread);
}

function showState(state: string, client: Sdk.PushClient, transport = client.transportName): void {
  const pill = $('#status');
  pill.dataset.state = state;
  if (state === 'connected') pill.textContent = `connected · ${transport}`;
  else if (state !== 'closed') pill.textContent = `${state}…`;
  pill.dataset.transport = transport ?? '';
}

function render(m: Sdk.PushMessage): void {
  const li = document.createElement('li');
  li.className = 'message';
  li.dataset.id = m.id;
  if (m.seq !== undefined) li.dataset.seq = String(m.seq);
  const where = document.createElement('span');
  where.className = 'where';
  where.textContent = m.seq !== undefined ? `#${m.seq}` : `${m.topic} @${m.offset}`;
  const when = document.createElement('span');
  when.className = 'muted';
  when.textContent = new Date(m.timestamp).toLocaleTimeString();
  const data = document.createElement('pre');
  data.textContent = JSON.stringify(m.data);
  li.append(where, when, data);
  $('#messages').prepend(li);
  $('#count').textContent = String($('#messages').children.length);
}

function code(text: string): HTMLElement {
  const el = document.createElement('code');
  el.textContent = text;
  return el;
}

function wirePushForm(user: string): void {
  const form = $<HTMLFormElement>('#push-form');
  form.onsubmit = async (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    const target = f.get('target');
    const to =
      target === 'topic'
        ? { topic: String(f.get('topic')) }
        : target === 'all'
          ? { all: true }
          : { users: [user] };
    const res = await fetch('/v1/demo/push', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ to, type: 'text', data: { text: String(f.get('text')), from: user } }),
    });
    const body = await res.json();
    $('#push-result').textContent = res.ok
      ? `accepted: ${body.id} (${body.recipients} recipient${body.recipients === 1 ? '' : 's'})`
      : `refused: ${body.error?.message ?? res.status}`;
  };
}

async function main(): Promise<void> {
  const wanted = new URLSearchParams(location.search).get('user') ?? localStorage.getItem('demo:user');
  const first = await mintToken(wanted);
  if (first) {
    localStorage.setItem('demo:user', first.user);
    let pending: string | null = first.token;
    start(
      {
        app: 'demo',
        // The first token was just minted; reconnects and refreshes mint fresh ones.
        getToken: async () => {
          const token = pending ?? (await mintToken(first.user))?.token;
          pending = null;
          if (!token) throw new Error('demo tokens were turned off');
          return token;
        },
      },
      first.user,
    );
    wirePushForm(first.user);
    return;
  }
  // No demo tokens here: ask for one (pushing then needs the server API with app credentials).
  $('#identity').textContent = 'Paste a client token to connect.';
  $('#send').hidden = true;
  const form = $<HTMLFormElement>('#token-form');
  form.hidden = false;
  form.onsubmit = (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    const token = String(f.get('token')).trim();
    const user = readSub(token) ?? 'unknown';
    form.hidden = true;
    start({ app: String(f.get('app')), token }, user);
  };
}

function readSub(token: string): string | null {
  try {
    return JSON.parse(atob(token.split('.')[1]!.replace(/-/g, '+').replace(/_/g, '/'))).sub ?? null;
  } catch {
    return null;
  }
}

main().catch((err: unknown) => {
  $('#identity').textContent = `Could not start: ${(err as Error).message}`;
});
