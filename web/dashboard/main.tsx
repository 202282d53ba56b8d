// The operator dashboard: live connections, traffic and delivery charts, user lookup with
// kick, recent messages with per-recipient status, and a test send. Everything comes from
// /v1/admin/* with the admin token the operator types in (kept for this tab only).
import 'uplot/dist/uPlot.min.css';
import './dashboard.css';
import { render } from 'preact';
import { useCallback, useEffect, useState } from 'preact/hooks';
import {
  AdminApi,
  AdminError,
  type GroupSize,
  type Presence,
  type RecentMessage,
  type RoomSettings,
  type StatsSnapshot,
  type WebhookPanel,
} from './api.js';
import { TimeChart } from './chart.js';

const TOKEN_KEY = 'message-push:admin-token';
const STATS_EVERY_MS = 1000;
const MESSAGES_EVERY_MS = 2000;
const GROUPS_EVERY_MS = 5000;

/** Calls `fn` now and every `ms` while mounted; errors go to `onError`. */
function usePoll(fn: () => Promise<void>, ms: number, onError: (e: unknown) => void, deps: unknown[]) {
  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout>;
    const tick = async () => {
      try {
        await fn();
      } catch (e) {
        onError(e);
      }
      if (!stopped) timer = setTimeout(tick, ms);
    };
    void tick();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, deps);
}

function Login(props: { onLogin: (api: AdminApi) => void; error: string | null }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | null>(props.error);
  const submit = async (ev: Event) => {
    ev.preventDefault();
    const api = new AdminApi(token.trim());
    try {
      await api.stats();
      sessionStorage.setItem(TOKEN_KEY, token.trim());
      props.onLogin(api);
    } catch (e) {
      setError(e instanceof AdminError ? e.message : String(e));
    }
  };
  return (
    <form class="card login" onSubmit={submit}>
      <h2>Admin token</h2>
      <p class="muted">
        The value of <code>PUSH_ADMIN_TOKEN</code>. It stays in this tab only.
      </p>
      <input
        type="password"
        name="admin-token"
        value={token}
        onInput={(e) => setToken((e.target as HTMLInputElement).value)}
        required
      />
      <button type="submit">Open dashboard</button>
      {error && <p class="error">{error}</p>}
    </form>
  );
}

function Figures(props: { stats: StatsSnapshot }) {
  const { stats } = props;
  const last = (k: keyof StatsSnapshot['series']) => stats.series[k].at(-1) ?? 0;
  const platforms = Object.entries(stats.connections.byPlatform).sort((a, b) => b[1] - a[1]);
  return (
    <section class="figures">
      <div class="card figure" data-testid="connections">
        <span class="label">connections</span>
        <strong>{stats.connections.total}</strong>
        <ul class="platforms">
          {platforms.length === 0 && <li class="muted">none</li>}
          {platforms.map(([p, n]) => (
            <li key={p} data-platform={p}>
              {p} <b>{n}</b>
            </li>
          ))}
        </ul>
      </div>
      <Figure label="messages in /s" value={last('in')} total={stats.totals.in} />
      <Figure label="messages out /s" value={last('out')} total={stats.totals.out} />
      <Figure label="acks /s" value={last('acks')} total={stats.totals.acks} />
      <Figure label="retries /s" value={last('retries')} total={stats.totals.retries} />
      <Figure label="failures /s" value={last('failures')} total={stats.totals.failures} warn />
    </section>
  );
}

function Figure(props: { label: string; value: number; total: number; warn?: boolean }) {
  return (
    <div class={`card figure${props.warn && props.total > 0 ? ' warn' : ''}`}>
      <span class="label">{props.label}</span>
      <strong>{+props.value.toFixed(1)}</strong>
      <span class="muted">{props.total} total</span>
    </div>
  );
}

function Charts(props: { stats: StatsSnapshot }) {
  const s = props.stats.series;
  return (
    <section class="charts">
      <TimeChart
        title="Messages per second"
        unit=""
        t={s.t}
        series={[
          { label: 'in', color: '#2b6cb0', values: s.in },
          { label: 'out', color: '#38a169', values: s.out },
        ]}
      />
      <TimeChart
        title="Acks, retries, failures per second"
        unit=""
        t={s.t}
        series={[
          { label: 'acks', color: '#38a169', values: s.acks },
          { label: 'retries', color: '#d69e2e', values: s.retries },
          { label: 'failures', color: '#c53030', values: s.failures },
        ]}
      />
      <TimeChart
        title="Open connections"
        unit=""
        t={s.t}
        series={[{ label: 'connections', color: '#6b46c1', values: s.connections }]}
      />
    </section>
  );
}

function UserLookup(props: { api: AdminApi; apps: string[]; app: string; setApp: (a: string) => void }) {
  const { api } = props;
  const [user, setUser] = useState('');
  const [presence, setPresence] = useState<Presence | null>(null);
  const [note, setNote] = useState('');
  const look = useCallback(
    async (who = user) => {
      if (!who) return;
      setPresence(await api.presence(props.app, who));
    },
    [api, props.app, user],
  );
  const kick = async (device?: string) => {
    const { closed } = await api.kick(props.app, user, device);
    setNote(`closed ${closed} connection${closed === 1 ? '' : 's'}`);
    await look();
  };
  return (
    <section class="card" id="lookup">
      <h2>Online user</h2>
      <form
        class="row"
        onSubmit={(e) => {
          e.preventDefault();
          setNote('');
          void look().catch((err) => setNote(String((err as Error).message)));
        }}
      >
        <AppSelect apps={props.apps} value={props.app} onChange={props.setApp} />
        <input
          name="user"
          placeholder="user id"
          value={user}
          onInput={(e) => setUser((e.target as HTMLInputElement).value)}
          required
        />
        <button type="submit">Look up</button>
      </form>
      {presence && (
        <div data-testid="presence">
          <p>
            <code>{presence.user}</code> is{' '}
            <b class={presence.online ? 'ok' : 'muted'}>{presence.online ? 'online' : 'offline'}</b>
            {presence.online && (
              <button type="button" class="danger" name="kick-all" onClick={() => void kick()}>
                Kick all
              </button>
            )}
          </p>
          {presence.connections.length > 0 && (
            <table>
              <thead>
                <tr>
                  <th>connection</th>
                  <th>device</th>
                  <th>platform</th>
                  <th>node</th>
                  <th>since</th>
                  <th />
                </tr>
              </thead>
              <tbody>
                {presence.connections.map((c) => (
                  <tr key={c.connection_id} class="connection">
                    <td>
                      <code>{c.connection_id}</code>
                    </td>
                    <td>{c.device}</td>
                    <td>{c.platform}</td>
                    <td>{c.node}</td>
                    <td>{new Date(c.connected_at).toLocaleTimeString()}</td>
                    <td>
                      <button type="button" class="danger" onClick={() => void kick(c.device)}>
                        Kick
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </div>
      )}
      {note && (
        <p class="muted" data-testid="kick-result">
          {note}
        </p>
      )}
    </section>
  );
}

function AppSelect(props: { apps: string[]; value: string; onChange: (v: string) => void }) {
  return (
    <select
      name="app"
      value={props.value}
      onChange={(e) => props.onChange((e.target as HTMLSelectElement).value)}
    >
      {props.apps.map((a) => (
        <option key={a} value={a}>
          {a}
        </option>
      ))}
    </select>
  );
}

function SendForm(props: { api: AdminApi; apps: string[]; app: string; setApp: (a: string) => void }) {
  const [target, setTarget] = useState<'user' | 'topic' | 'all'>('user');
  const [name, setName] = useState('');
  const [data, setData] = useState('{"title":"Test from the dashboard"}');
  const [result, setResult] = useState('');
  const submit = async (e: Event) => {
    e.preventDefault();
    let parsed: unknown;
    try {
      parsed = JSON.parse(data);
    } catch {
      setResult('data is not valid JSON');
      return;
    }
    const to = target === 'user' ? { users: [name] } : target === 'topic' ? { topic: name } : { all: true };
    try {
      const r = await props.api.push({ app: props.app, to, type: 'notification', data: parsed });
      setResult(`accepted ${r.id} → ${r.recipients} recipient${r.recipients === 1 ? '' : 's'}`);
    } catch (err) {
      setResult(`refused: ${(err as Error).message}`);
    }
  };
  return (
    <section class="card" id="send">
      <h2>Send a test message</h2>
      <form onSubmit={submit}>
        <div class="row">
          <AppSelect apps={props.apps} value={props.app} onChange={props.setApp} />
          <select
            name="target"
            value={target}
            onChange={(e) => setTarget((e.target as HTMLSelectElement).value as typeof target)}
          >
            <option value="user">to user</option>
            <option value="topic">to topic</option>
            <option value="all">to everyone</option>
          </select>
          {target !== 'all' && (
            <input
              name="to"
              placeholder={target === 'user' ? 'user id' : 'topic'}
              value={name}
              onInput={(e) => setName((e.target as HTMLInputElement).value)}
              required
            />
          )}
        </div>
        <textarea
          name="data"
          rows={3}
          value={data}
          onInput={(e) => setData((e.target as HTMLTextAreaElement).value)}
        />
        <div class="row">
          <button type="submit">Send</button>
          <span class="muted" data-testid="send-result">
            {result}
          </span>
        </div>
      </form>
    </section>
  );
}

function RecentMessages(props: { api: AdminApi; app: string; onError: (e: unknown) => void }) {
  const [messages, setMessages] = useState<RecentMessage[]>([]);
  usePoll(
    async () => setMessages((await props.api.messages(props.app)).messages),
    MESSAGES_EVERY_MS,
    props.onError,
    [props.api, props.app],
  );
  return (
    <section class="card wide" id="recent">
      <h2>
        Recent messages in <code>{props.app}</code>
      </h2>
      <table>
        <thead>
          <tr>
            <th>time</th>
            <th>id</th>
            <th>type</th>
            <th>to</th>
            <th>status</th>
            <th>recipients</th>
          </tr>
        </thead>
        <tbody>
          {messages.length === 0 && (
            <tr>
              <td colSpan={6} class="muted">
                nothing yet
              </td>
            </tr>
          )}
          {messages.map((m) => (
            <tr key={m.id} class="recent" data-id={m.id}>
              <td>{new Date(m.timestamp).toLocaleTimeString()}</td>
              <td>
                <code>{m.id.length > 14 ? `${m.id.slice(0, 13)}…` : m.id}</code>
              </td>
              <td>{m.type}</td>
              <td>{m.topic ? `${m.topic} @${m.offset}` : JSON.stringify(m.to)}</td>
              <td>
                {Object.entries(m.status_counts)
                  .filter(([, n]) => n > 0)
                  .map(([s, n]) => (
                    <span key={s} class={`status ${s}`}>
                      {s} {n}
                    </span>
                  ))}
              </td>
              <td>
                {m.recipients.map((r) => (
                  <span
                    key={r.user}
                    class={`status ${r.status}`}
                    data-user={r.user}
                    title={`seq ${r.seq}, ${r.retries} retries`}
                  >
                    {r.user}: {r.status}
                  </span>
                ))}
                {m.recipients_total > m.recipients.length && (
                  <span class="muted"> +{m.recipients_total - m.recipients.length} more</span>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

/** The app's largest groups with their sizes, and its live rooms with their merge windows. */
function GroupsAndRooms(props: { api: AdminApi; app: string; onError: (e: unknown) => void }) {
  const [groups, setGroups] = useState<GroupSize[]>([]);
  const [rooms, setRooms] = useState<RoomSettings[]>([]);
  usePoll(
    async () => {
      const [g, r] = await Promise.all([props.api.groups(props.app), props.api.rooms(props.app)]);
      setGroups(g.groups);
      setRooms(r.rooms);
    },
    GROUPS_EVERY_MS,
    props.onError,
    [props.api, props.app],
  );
  return (
    <div class="columns" id="groups-rooms">
      <section class="card" id="groups">
        <h2>
          Groups in <code>{props.app}</code>
        </h2>
        <table>
          <thead>
            <tr>
              <th>group</th>
              <th>members</th>
            </tr>
          </thead>
          <tbody>
            {groups.length === 0 && (
              <tr>
                <td colSpan={2} class="muted">
                  no groups
                </td>
              </tr>
            )}
            {groups.map((g) => (
              <tr key={g.group} class="group" data-group={g.group}>
                <td>
                  <code>{g.group}</code>
                </td>
                <td>{g.members.toLocaleString()}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
      <section class="card" id="rooms">
        <h2>
          Live rooms in <code>{props.app}</code>
        </h2>
        <table>
          <thead>
            <tr>
              <th>topic</th>
              <th>merge window</th>
            </tr>
          </thead>
          <tbody>
            {rooms.length === 0 && (
              <tr>
                <td colSpan={2} class="muted">
                  no merged topics
                </td>
              </tr>
            )}
            {rooms.map((r) => (
              <tr key={r.topic} class="room" data-topic={r.topic}>
                <td>
                  <code>{r.topic}</code>
                </td>
                <td>{r.merge_ms} ms</td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
    </div>
  );
}

/** The app's offline hand-off webhook: where it points, its delay, and hand-offs by state. */
function Webhook(props: { api: AdminApi; app: string; onError: (e: unknown) => void }) {
  const [panel, setPanel] = useState<WebhookPanel | null>(null);
  usePoll(async () => setPanel(await props.api.webhook(props.app)), MESSAGES_EVERY_MS, props.onError, [
    props.api,
    props.app,
  ]);
  return (
    <section class="card wide" id="webhook">
      <h2>
        Offline hand-off webhook of <code>{props.app}</code>
      </h2>
      {panel?.webhook ? (
        <p data-testid="webhook-config">
          <code>{panel.webhook.url}</code> after {panel.webhook.after_ms} ms
        </p>
      ) : (
        <p class="muted" data-testid="webhook-config">
          none set (PUT /v1/webhook or <code>message-push webhook set</code>)
        </p>
      )}
      {panel && (
        <p data-testid="webhook-counts">
          {(['pending', 'delivered', 'failed'] as const).map((k) => (
            <span key={k} class={`status ${k === 'delivered' ? 'acked' : k}`} data-state={k}>
              {k} {panel.handoffs[k]}
            </span>
          ))}
        </p>
      )}
    </section>
  );
}

function Dashboard(props: { api: AdminApi; onLogout: (why: string | null) => void }) {
  const { api } = props;
  const [stats, setStats] = useState<StatsSnapshot | null>(null);
  const [apps, setApps] = useState<string[]>([]);
  const [app, setApp] = useState('');
  const [error, setError] = useState<string | null>(null);
  const onError = (e: unknown) => {
    if (e instanceof AdminError && (e.status === 401 || e.status === 403)) props.onLogout(e.message);
    else setError(`server unreachable: ${(e as Error).message}`);
  };
  usePoll(
    async () => {
      setStats(await api.stats());
      setError(null);
    },
    STATS_EVERY_MS,
    onError,
    [api],
  );
  useEffect(() => {
    api.apps().then(({ apps }) => {
      setApps(apps);
      setApp((current) => current || (apps.includes('demo') ? 'demo' : (apps[0] ?? '')));
    }, onError);
  }, [api]);
  return (
    <>
      <header>
        <h1>
          message-push <span>dashboard</span>
        </h1>
        <span class="muted">
          {error ?? (stats ? `updated ${new Date(stats.now).toLocaleTimeString()}` : 'loading…')}
        </span>
        <button type="button" onClick={() => props.onLogout(null)}>
          Sign out
        </button>
      </header>
      <main>
        {stats && <Figures stats={stats} />}
        {stats && <Charts stats={stats} />}
        <div class="columns">
          <UserLookup api={api} apps={apps} app={app} setApp={setApp} />
          <SendForm api={api} apps={apps} app={app} setApp={setApp} />
        </div>
        {app && <GroupsAndRooms api={api} app={app} onError={onError} />}
        {app && <RecentMessages api={api} app={app} onError={onError} />}
        {app && <Webhook api={api} app={app} onError={onError} />}
      </main>
    </>
  );
}

function App() {
  const saved = sessionStorage.getItem(TOKEN_KEY);
  const [api, setApi] = useState<AdminApi | null>(saved ? new AdminApi(saved) : null);
  const [why, setWhy] = useState<string | null>(null);
  if (!api) return <Login onLogin={setApi} error={why} />;
  return (
    <Dashboard
      api={api}
      onLogout={(reason) => {
        sessionStorage.removeItem(TOKEN_KEY);
        setWhy(reason);
        setApi(null);
      }}
    />
  );
}

render(<App />, document.getElementById('app')!);
