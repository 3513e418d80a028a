/**
 * The fan-out section: one publisher, 1,000 subscribers, each library's own way of sending one message
 * to many: rfc6455's topics (`server.publish`, the frame encoded once), ws's broadcast loop from its
 * README (`wss.clients.forEach(client => client.send(data))`), Bun's `server.publish` (uWebSockets'
 * topics). Figure: deliveries per second (messages received, summed over the subscribers), and per
 * second of server CPU, with the load generator's CPU beside it (it shares the 2 cores).
 *
 * The load runs in this process: 1,000 subscriber sockets that only count the frames they receive, and
 * a publisher socket that sends masked binary messages, keeping at most WINDOW messages not yet
 * received by every subscriber (so the rate is what the server sustains, not what it buffers).
 *
 * A second measurement, the memory of a subscription: a child process (`--expose-gc`) subscribes
 * stand-in connections to topics in a TopicHub and reports the heap it grew by per subscription.
 *
 *   node --import tsx bench/fanout.ts [--quick]
 *   BENCH_FANOUT_SERVERS=rfc6455,ws,bun BENCH_FANOUT_ROUNDS=3 BENCH_FANOUT_DURATION_MS=3000 BENCH_FANOUT_SUBSCRIBERS=1000
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { formatRate } from './format.ts';
import { envNumber, roundedLoad, type SectionRun } from './section.ts';
import { FANOUT_PUBLISH_PATH } from './servers/common.ts';
import { SERVER_LABELS, sourceRevision, startServer, unavailable, windowSnapshots, type ServerHandle, type ServerKind } from './servers/control.ts';
import { stats, type Stats } from './harness.ts';

const SIZES = [16, 1024] as const;
const WINDOW = 16;
const FANOUT_SERVERS: readonly ServerKind[] = ['rfc6455', 'ws', 'bun'];

export interface FanoutOptions {
  readonly rounds: number;
  readonly durationMs: number;
  readonly warmupMs: number;
  readonly subscribers: number;
}

export interface FanoutRun {
  readonly round: number;
  readonly server: ServerKind;
  readonly size: number;
  readonly deliveriesPerSec: number;
  readonly publishesPerSec: number;
  /** Server process CPU time / wall time over the measured window (from /proc). */
  readonly serverCpu: number;
  /** This process's CPU time / wall time over the window (the load generator). */
  readonly generatorCpu: number;
  readonly deliveriesPerServerCpuSecond: number;
  readonly error: string | null;
}

export interface FanoutRow {
  readonly server: ServerKind;
  readonly label: string;
  readonly size: number;
  readonly deliveriesPerSec: Stats;
  readonly serverCpu: Stats;
  readonly generatorCpu: Stats;
  readonly deliveriesPerServerCpuSecond: Stats;
}

export interface FanoutResults {
  readonly options: FanoutOptions;
  readonly commit: string | null;
  readonly loadAverage: readonly number[];
  readonly skipped: Readonly<Record<string, string>>;
  readonly runs: readonly FanoutRun[];
  readonly rows: readonly FanoutRow[];
  /** rfc6455 ÷ each other server, deliveries/s: median of per-round ratios, per size. */
  readonly ratios: readonly { readonly size: number; readonly denominator: ServerKind; readonly deliveries: Stats; readonly perServerCpu: Stats }[];
  /** Heap per subscription in a TopicHub (bytes), measured in a child process; null if that failed. */
  readonly subscriptionBytes: { readonly firstTopic: number; readonly furtherTopic: number } | null;
  /** The same table BENCHMARKS.md shows. */
  readonly markdown: string;
}

function optionsFor(quick: boolean): FanoutOptions {
  return {
    rounds: Math.max(1, Math.round(envNumber('BENCH_FANOUT_ROUNDS') ?? (quick ? 1 : 3))),
    durationMs: envNumber('BENCH_FANOUT_DURATION_MS') ?? (quick ? 1000 : 3000),
    warmupMs: envNumber('BENCH_FANOUT_WARMUP_MS') ?? (quick ? 300 : 1000),
    subscribers: Math.max(1, Math.round(envNumber('BENCH_FANOUT_SUBSCRIBERS') ?? 1000)),
  };
}

function serversFromEnv(): ServerKind[] {
  const value = process.env['BENCH_FANOUT_SERVERS'];
  if (value === undefined || value === '') return [...FANOUT_SERVERS];
  const list = value.split(',').map((name) => name.trim()) as ServerKind[];
  for (const kind of list) if (!FANOUT_SERVERS.includes(kind)) throw new RangeError(`BENCH_FANOUT_SERVERS: ${kind} is not one of ${FANOUT_SERVERS.join(', ')}`);
  return list;
}

// ------------------------------------------------------------------ the load

/** Counts complete data messages in a stream of server frames (RFC 6455 §5.2), nothing else. */
class MessageCounter {
  messages = 0;
  private skip = 0;
  private readonly header = Buffer.alloc(10);
  private headerLength = 0;

  push(chunk: Buffer): void {
    let i = 0;
    const length = chunk.length;
    while (i < length) {
      if (this.skip > 0) {
        const take = Math.min(this.skip, length - i);
        this.skip -= take;
        i += take;
        continue;
      }
      this.header[this.headerLength++] = chunk[i++]!;
      if (this.headerLength < 2) continue;
      const short = this.header[1]! & 0x7f;
      const needed = short === 126 ? 4 : short === 127 ? 10 : 2;
      if (this.headerLength < needed) continue;
      const payload = short === 126 ? this.header.readUInt16BE(2) : short === 127 ? Number(this.header.readBigUInt64BE(2)) : short;
      // FIN set and a data opcode (or a final continuation): one message complete once its payload is in.
      if ((this.header[0]! & 0x80) !== 0 && (this.header[0]! & 0x08) === 0) this.messages++;
      this.headerLength = 0;
      this.skip = payload;
    }
  }
}

function handshake(port: number, path: string): Promise<{ socket: Socket; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', noDelay: true });
    const key = randomBytes(16).toString('base64');
    let received = Buffer.alloc(0);
    const timer = setTimeout(() => fail(new Error(`no 101 from port ${port} within 10 s`)), 10_000);
    const fail = (error: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(error);
    };
    socket.once('error', fail);
    socket.on('data', function onData(chunk: Buffer) {
      received = Buffer.concat([received, chunk]);
      const end = received.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      socket.off('error', fail);
      clearTimeout(timer);
      const head = received.subarray(0, end).toString('latin1');
      if (!head.startsWith('HTTP/1.1 101')) {
        socket.destroy();
        reject(new Error(`expected 101, got ${head.split('\r\n')[0]}`));
        return;
      }
      resolve({ socket, rest: received.subarray(end + 4) });
    });
    socket.write(
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
  });
}

/** A masked binary frame (RFC 6455 §5.3: a client masks; the payload is zeros, so masked it is the key repeated). */
function publisherFrame(size: number): Buffer {
  const header = size < 126 ? 2 : size < 0x10000 ? 4 : 10;
  const frame = Buffer.alloc(header + 4 + size);
  frame[0] = 0x82;
  if (size < 126) frame[1] = 0x80 | size;
  else {
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(size, 2);
  }
  const key = randomBytes(4);
  key.copy(frame, header);
  for (let i = 0; i < size; i++) frame[header + 4 + i] = key[i & 3]!;
  return frame;
}

function cpuSeconds(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}

async function measureFanout(server: ServerHandle, size: number, options: FanoutOptions, round: number): Promise<FanoutRun> {
  const subscribers: { socket: Socket; counter: MessageCounter }[] = [];
  const sockets: Socket[] = [];
  let total = 0;
  let publisher: Socket | null = null;
  try {
    for (let i = 0; i < options.subscribers; i++) {
      const { socket, rest } = await handshake(server.port, '/subscribe');
      sockets.push(socket);
      const counter = new MessageCounter();
      const entry = { socket, counter };
      socket.on('data', (chunk: Buffer) => {
        const before = counter.messages;
        counter.push(chunk);
        total += counter.messages - before;
      });
      socket.on('error', () => undefined);
      if (rest.length > 0) counter.push(rest);
      subscribers.push(entry);
    }
    const opened = await handshake(server.port, FANOUT_PUBLISH_PATH);
    publisher = opened.socket;
    sockets.push(publisher);
    publisher.on('error', () => undefined);
    publisher.on('data', () => undefined);
    const frame = publisherFrame(size);
    const n = options.subscribers;
    let published = 0;

    // Until every subscriber has had a message (each library subscribes as the connection opens, a
    // moment after its 101), then the warm-up, then the measured window.
    const deadline = Date.now() + 20_000;
    while (subscribers.some((entry) => entry.counter.messages === 0)) {
      if (Date.now() > deadline) throw new Error('not every subscriber received a message within 20 s');
      publisher.write(frame);
      published++;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    // From here each publish reaches all n. The early probes that some subscribers missed are
    // written off once the last of them has arrived; then at most WINDOW publishes are outstanding.
    await new Promise((resolve) => setTimeout(resolve, 100));
    const base = total - published * n;
    let stop = false;
    const pump = (): void => {
      while (!stop && published * n + base - total < WINDOW * n) {
        publisher!.write(frame);
        published++;
      }
    };
    const tick = setInterval(pump, 1);
    const onData = (): void => pump();
    for (const entry of subscribers) entry.socket.on('data', onData);
    pump();
    await new Promise((resolve) => setTimeout(resolve, options.warmupMs));
    const snapshots = windowSnapshots(server);
    const startTotal = total;
    const startPublished = published;
    const startCpu = cpuSeconds();
    const start = performance.now();
    snapshots.hooks.onWindowStart();
    await new Promise((resolve) => setTimeout(resolve, options.durationMs));
    snapshots.hooks.onWindowEnd();
    const seconds = (performance.now() - start) / 1000;
    const generatorCpu = (cpuSeconds() - startCpu) / seconds;
    const delivered = total - startTotal;
    stop = true;
    clearInterval(tick);
    const { usage } = await snapshots.read();
    const deliveriesPerSec = delivered / seconds;
    return {
      round,
      server: server.kind,
      size,
      deliveriesPerSec,
      publishesPerSec: (published - startPublished) / seconds,
      serverCpu: usage.cpu,
      generatorCpu,
      deliveriesPerServerCpuSecond: deliveriesPerSec / usage.cpu,
      error: null,
    };
  } finally {
    for (const socket of sockets) socket.destroy();
    // Let the server see the connections go before the next scenario opens 1,000 more.
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
}

// ------------------------------------------------------------------ subscription memory

/** Run in a child with --expose-gc: heap per subscription in a TopicHub of stand-in connections. */
async function subscriptionMemoryChild(): Promise<void> {
  const { TopicHub } = await import('../src/topics.ts');
  const gc = (globalThis as { gc?: () => void }).gc!;
  const connections = 20_000;
  const stand = Array.from({ length: connections }, () => ({ state: 'open' }) as unknown as import('../src/websocket.ts').WebSocket);
  const hub = new TopicHub(null);
  const topics = Array.from({ length: 100 }, (_, i) => `topic-${i}`);
  const heap = (): number => {
    gc();
    gc();
    return process.memoryUsage().heapUsed;
  };
  const before = heap();
  for (let i = 0; i < connections; i++) hub.subscribe(stand[i]!, topics[i % 100]!);
  const first = heap();
  for (let i = 0; i < connections; i++) hub.subscribe(stand[i]!, topics[(i + 1) % 100]!);
  const second = heap();
  process.stdout.write(JSON.stringify({ firstTopic: (first - before) / connections, furtherTopic: (second - first) / connections, keep: hub.subscriberCount('topic-0') }));
}

function subscriptionMemory(): { firstTopic: number; furtherTopic: number } | null {
  try {
    const output = execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', fileURLToPath(import.meta.url), '--subscription-memory'], { encoding: 'utf8' });
    const parsed = JSON.parse(output) as { firstTopic: number; furtherTopic: number };
    return { firstTopic: parsed.firstTopic, furtherTopic: parsed.furtherTopic };
  } catch (error) {
    process.stderr.write(`subscription memory: ${error instanceof Error ? error.message : String(error)}\n`);
    return null;
  }
}

// ------------------------------------------------------------------ the section

function ratioStats(runs: readonly FanoutRun[], size: number, denominator: ServerKind, rounds: number, pick: (run: FanoutRun) => number): Stats {
  const values: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const a = runs.find((run) => run.round === round && run.size === size && run.server === 'rfc6455' && run.error === null);
    const b = runs.find((run) => run.round === round && run.size === size && run.server === denominator && run.error === null);
    if (a !== undefined && b !== undefined) values.push(pick(a) / pick(b));
  }
  return stats(values.filter(Number.isFinite));
}

function percent(value: number): string {
  return Number.isFinite(value) ? `${(100 * value).toFixed(0)}%` : '–';
}

function ratioCell(value: Stats): string {
  return Number.isFinite(value.median) ? `${value.median.toFixed(2)}× (${value.min.toFixed(2)}–${value.max.toFixed(2)})` : '–';
}

function markdownFor(results: Omit<FanoutResults, 'markdown'>): string {
  const lines = [
    `One publisher, ${results.options.subscribers} subscribers, binary messages; ${results.options.rounds} round(s) of ${results.options.durationMs} ms after ${results.options.warmupMs} ms of warm-up; at most ${WINDOW} publishes in flight. deliveries/s: messages received, summed over the subscribers (median, min–max); srv CPU / gen CPU: server process and load generator CPU time ÷ wall time.`,
    '',
    '| size | server | deliveries/s | min–max | srv CPU | deliveries / srv CPU-s | gen CPU |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const row of results.rows) {
    lines.push(
      `| ${row.size} B | ${row.label} | ${formatRate(row.deliveriesPerSec.median)} | ${formatRate(row.deliveriesPerSec.min)}–${formatRate(row.deliveriesPerSec.max)} | ${percent(row.serverCpu.median)} | ${formatRate(row.deliveriesPerServerCpuSecond.median)} | ${percent(row.generatorCpu.median)} |`,
    );
  }
  lines.push('');
  for (const ratio of results.ratios) {
    lines.push(`- ${ratio.size} B, rfc6455 ÷ ${SERVER_LABELS[ratio.denominator]}: deliveries/s ${ratioCell(ratio.deliveries)}, per server CPU-second ${ratioCell(ratio.perServerCpu)}`);
  }
  for (const [kind, reason] of Object.entries(results.skipped)) lines.push(`- ${SERVER_LABELS[kind as ServerKind]} not run: ${reason}`);
  if (results.subscriptionBytes !== null) {
    lines.push(
      `- Memory of a subscription (TopicHub, 20,000 stand-in connections, V8 heap after GC): ${results.subscriptionBytes.firstTopic.toFixed(0)} B for a connection's first topic, ${results.subscriptionBytes.furtherTopic.toFixed(0)} B for each further one; a connection with no subscription has none.`,
    );
  }
  return lines.join('\n');
}

export async function runFanout(run: SectionRun): Promise<{ results: FanoutResults; missedTargets: number }> {
  const options = optionsFor(run.quick);
  const progress = run.progress ?? ((text: string) => process.stderr.write(`${text}\n`));
  const wanted = serversFromEnv();
  const skipped: Record<string, string> = {};
  const servers = wanted.filter((kind) => {
    const reason = unavailable(kind);
    if (reason !== null) skipped[kind] = reason;
    return reason === null;
  });
  const sizes = SIZES.filter((size) => (run.filter ?? []).length === 0 || run.filter!.some((prefix) => `fanout ${size} B`.startsWith(prefix)));
  const loadAverage = roundedLoad();
  run.print(`fan-out: ${servers.map((kind) => SERVER_LABELS[kind]).join(', ')}; ${options.subscribers} subscribers; load average at start ${loadAverage.join(' ')}`);
  const runs: FanoutRun[] = [];
  for (let round = 0; round < options.rounds; round++) {
    const order = servers.map((_kind, index) => servers[(index + round) % servers.length]!);
    for (const kind of order) {
      let server: ServerHandle | null = null;
      try {
        server = await startServer(kind, { env: { BENCH_FANOUT: '1' } });
        for (const size of sizes) {
          let record: FanoutRun;
          try {
            record = await measureFanout(server, size, options, round);
          } catch (error) {
            record = { round, server: kind, size, deliveriesPerSec: Number.NaN, publishesPerSec: Number.NaN, serverCpu: Number.NaN, generatorCpu: Number.NaN, deliveriesPerServerCpuSecond: Number.NaN, error: error instanceof Error ? error.message : String(error) };
          }
          runs.push(record);
          progress(
            `  round ${round + 1}/${options.rounds}  ${SERVER_LABELS[kind].padEnd(18)} fan-out ${String(size).padStart(4)} B × ${options.subscribers}  ` +
              (record.error === null
                ? `${formatRate(record.deliveriesPerSec)} deliveries/s (${formatRate(record.publishesPerSec)} publishes/s)  srv CPU ${percent(record.serverCpu)}  gen CPU ${percent(record.generatorCpu)}`
                : `failed: ${record.error}`),
          );
        }
      } finally {
        await server?.stop();
      }
    }
  }
  const rows: FanoutRow[] = [];
  for (const size of sizes) {
    for (const kind of servers) {
      const own = runs.filter((record) => record.size === size && record.server === kind && record.error === null);
      rows.push({
        server: kind,
        label: SERVER_LABELS[kind],
        size,
        deliveriesPerSec: stats(own.map((record) => record.deliveriesPerSec)),
        serverCpu: stats(own.map((record) => record.serverCpu).filter(Number.isFinite)),
        generatorCpu: stats(own.map((record) => record.generatorCpu)),
        deliveriesPerServerCpuSecond: stats(own.map((record) => record.deliveriesPerServerCpuSecond).filter(Number.isFinite)),
      });
    }
  }
  const ratios = servers.includes('rfc6455')
    ? sizes.flatMap((size) =>
        servers
          .filter((kind) => kind !== 'rfc6455')
          .map((denominator) => ({
            size,
            denominator,
            deliveries: ratioStats(runs, size, denominator, options.rounds, (record) => record.deliveriesPerSec),
            perServerCpu: ratioStats(runs, size, denominator, options.rounds, (record) => record.deliveriesPerServerCpuSecond),
          })),
      )
    : [];
  const partial = { options, commit: sourceRevision().commit, loadAverage, skipped, runs, rows, ratios, subscriptionBytes: subscriptionMemory() };
  const markdown = markdownFor(partial);
  run.print(`${markdown}\n`);
  return { results: { ...partial, markdown }, missedTargets: 0 };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv.includes('--subscription-memory')) {
    await subscriptionMemoryChild();
  } else {
    await runFanout({ quick: process.argv.includes('--quick'), print: (text) => process.stdout.write(text) });
  }
}
