/**
 * Every core: a real `node:cluster` of two workers on one port (test/fixtures/cluster-server.ts, a
 * child process stopped by its PID), with Node's WebSocket client as the peer. Publishes cross the
 * workers through the cluster backplane; a worker killed under its clients leaves them a 1006 and is
 * replaced; SIGTERM to the primary closes every client with 1001 and every process exits.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { describe, test, type TestContext } from 'node:test';
import { until, withTimeout, type WsClient } from './helpers/server.ts';
import { crossed, openIdentified, request } from './helpers/topics.ts';

const FIXTURE = fileURLToPath(new URL('./fixtures/cluster-server.ts', import.meta.url));

interface Cluster {
  readonly primary: ChildProcess;
  /** Every worker that is listening now, by PID. */
  readonly listening: Set<number>;
  readonly exited: Set<number>;
  port: number;
  readonly output: string[];
}

/** Starts the fixture and waits for `workers` listening workers; everything started is killed by PID afterwards. */
async function startCluster(t: TestContext, workers = 2): Promise<Cluster> {
  const primary = spawn(process.execPath, ['--import', 'tsx', FIXTURE], {
    env: { ...process.env, WORKERS: String(workers) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const cluster: Cluster = { primary, listening: new Set(), exited: new Set(), port: 0, output: [] };
  const seen = new Set<number>();
  createInterface({ input: primary.stdout! }).on('line', (line) => {
    cluster.output.push(line);
    const event = JSON.parse(line) as { listening?: number; port?: number; exit?: number };
    if (event.listening !== undefined) {
      cluster.listening.add(event.listening);
      seen.add(event.listening);
      cluster.port = event.port!;
    }
    if (event.exit !== undefined) {
      cluster.listening.delete(event.exit);
      cluster.exited.add(event.exit);
    }
  });
  primary.stderr!.on('data', (chunk: Buffer) => cluster.output.push(chunk.toString()));
  t.after(() => {
    for (const pid of seen) if (!cluster.exited.has(pid)) killQuietly(pid);
    if (primary.exitCode === null && primary.signalCode === null) primary.kill('SIGKILL');
  });
  await until(() => cluster.listening.size === workers, 30_000, `${workers} workers listening (${cluster.output.join(' | ')})`);
  return cluster;
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

/** Opens clients until `perWorker` are connected to each of `pids` (round-robin alternates them). */
async function clientsOnEach(cluster: Cluster, pids: readonly number[], perWorker: number, clients: WsClient[]): Promise<Map<number, WsClient[]>> {
  const byWorker = new Map<number, WsClient[]>(pids.map((pid) => [pid, []]));
  for (let attempts = 0; attempts < 40 && [...byWorker.values()].some((list) => list.length < perWorker); attempts++) {
    const { client, pid } = await openIdentified(cluster.port, clients);
    const list = byWorker.get(pid);
    if (list !== undefined && list.length < perWorker) list.push(client);
    else client.close();
  }
  for (const [pid, list] of byWorker) assert.equal(list.length, perWorker, `clients on worker ${pid}`);
  return byWorker;
}

describe('node:cluster: two workers on one port', { timeout: 90_000 }, () => {
  test('a publish on one worker reaches the subscribers on the other, not the sender; a killed worker gives 1006 and is replaced; SIGTERM closes everyone with 1001', async (t) => {
    const cluster = await startCluster(t);
    const clients: WsClient[] = [];
    t.after(() => {
      for (const client of clients) client.close();
    });
    const [pidA, pidB] = [...cluster.listening] as [number, number];
    const byWorker = await clientsOnEach(cluster, [pidA, pidB], 2, clients);
    const [a1, a2] = byWorker.get(pidA)! as [WsClient, WsClient];
    const [b1, b2] = byWorker.get(pidB)! as [WsClient, WsClient];
    for (const client of [a1, a2, b1, b2]) assert.equal(await request(client, 'sub room'), 'ok true');
    // The subscriptions reach the primary over IPC: publish from A until B's clients see it.
    await crossed(a1, [a2], [b1, b2], 'probe');

    // Both ways, in order per publisher, and never back to the sender.
    for (let i = 0; i < 20; i++) assert.equal(await request(b2, `pub room from-b2-${i}`), 'published 1');
    for (let i = 0; i < 20; i++) {
      assert.equal(await b1.next(5000), `from-b2-${i}`);
      assert.equal(await a1.next(5000), `from-b2-${i}`);
      assert.equal(await a2.next(5000), `from-b2-${i}`);
    }
    const silentSender = await b2.next(300).then(String, () => null);
    assert.equal(silentSender, null, 'the sender got nothing of its own');

    // A worker dies: its clients see 1006 at once (the OS closed their TCP connections), not a hang;
    // the pool forks a replacement that takes new connections.
    process.kill(pidB, 'SIGKILL');
    const [closeB1, closeB2] = await Promise.all([b1.waitClosed(5000), b2.waitClosed(5000)]);
    assert.deepEqual([closeB1.code, closeB2.code], [1006, 1006]);
    await until(() => cluster.listening.size === 2 && !cluster.listening.has(pidB), 30_000, 'a replacement worker');
    const pidC = [...cluster.listening].find((pid) => pid !== pidA)!;
    const [c1] = (await clientsOnEach(cluster, [pidC], 1, clients)).get(pidC)! as [WsClient];
    assert.equal(await request(c1, 'sub room'), 'ok true');
    await crossed(a1, [a2], [c1], 'again');

    // Graceful shutdown of the pool: 1001 to every client of every worker, then every process exits.
    const exited = new Promise<number | null>((resolve) => cluster.primary.once('exit', (code) => resolve(code)));
    cluster.primary.kill('SIGTERM');
    const closes = await Promise.all([a1, a2, c1].map((client) => client.waitClosed(10_000)));
    assert.deepEqual(closes.map((close) => close.code), [1001, 1001, 1001]);
    assert.equal(await withTimeout(exited, 15_000, 'the primary exiting'), 0);
    await until(() => cluster.exited.has(pidA) && cluster.exited.has(pidC), 5000, 'both workers exited');
  });

  test('a primary that stops reading its IPC channel costs a worker at most its cap: publishes beyond it are dropped and reported, then flow again', async (t) => {
    const cluster = await startCluster(t, 1);
    const clients: WsClient[] = [];
    t.after(() => {
      for (const client of clients) client.close();
    });
    const [pid] = [...cluster.listening] as [number];
    const { client } = await openIdentified(cluster.port, clients);
    const rss = (): number => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
    const text = 'x'.repeat(64 * 1024);
    // The primary stops (SIGSTOP): nothing it is sent is read, and the worker's IPC writes back up.
    process.kill(cluster.primary.pid!, 'SIGSTOP');
    t.after(() => {
      if (cluster.primary.exitCode === null) process.kill(cluster.primary.pid!, 'SIGCONT');
    });
    const before = rss();
    for (let i = 0; i < 3000; i++) assert.equal(await request(client, `pub room ${text}`), 'published 0');
    // Unbounded, the queue alone would hold the 187.5 MiB published; capped, it holds 16 MiB (the rest
    // of the growth is received messages not yet collected).
    const grown = rss() - before;
    t.diagnostic(`3000 publishes of 64 KiB (${(3000 * 64) / 1024} MiB) with the primary stopped: worker RSS grew ${(grown / 1048576).toFixed(1)} MiB`);
    assert.ok(grown < 100 * 1048576, `worker RSS grew ${grown} bytes`);
    await until(() => cluster.output.some((line) => line.includes('IPC channel is backed up')), 5000, 'the overflow reported');

    // The primary reads again: the backlog drains, the drop count is reported, publishing goes on.
    process.kill(cluster.primary.pid!, 'SIGCONT');
    await until(() => cluster.output.some((line) => /\d+ publish\(es\) dropped while the IPC channel was backed up/.test(line)), 10_000, 'the drop count reported');
    assert.equal(await request(client, 'pub room after'), 'published 0');
  });
});
