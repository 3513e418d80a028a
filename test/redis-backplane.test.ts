/**
 * Across machines: two independent server processes (test/fixtures/redis-server.ts) joined by a real
 * Redis server (Debian's redis-server, started here on a free 127.0.0.1 port without persistence and
 * stopped by its PID), with Node's WebSocket client as the peer. A publish on either server reaches the
 * subscribers on both, once; Redis is then killed and started again on the same port: the loss is
 * reported and delivery resumes.
 *
 * Without /usr/bin/redis-server the test is skipped (.ci/run installs it).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { describe, test, type TestContext } from 'node:test';
import { connect as tcpConnect } from 'node:net';
import { redisBackplane, type RedisClientLike, type RedisSubscriberLike } from '../src/index.ts';
import { sleep, until, withTimeout, type WsClient } from './helpers/server.ts';
import { crossed, openIdentified, request } from './helpers/topics.ts';

const REDIS_SERVER = '/usr/bin/redis-server';
const FIXTURE = fileURLToPath(new URL('./fixtures/redis-server.ts', import.meta.url));
const skip = existsSync(REDIS_SERVER)
  ? false
  : `${REDIS_SERVER} not found: install Debian's redis-server package (apt-get install redis-server), as .ci/run does`;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function accepting(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Starts redis-server on `port` (no RDB, no AOF) and waits until it accepts connections. */
async function startRedis(t: TestContext, port: number): Promise<ChildProcess> {
  const redis = spawn(REDIS_SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'], {
    stdio: 'ignore',
  });
  t.after(() => stop(redis, 'SIGKILL'));
  const deadline = Date.now() + 10_000;
  while (!(await accepting(port))) {
    if (Date.now() > deadline || redis.exitCode !== null) throw new Error(`redis-server on port ${port} did not start`);
    await sleep(20);
  }
  return redis;
}

function stop(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  return exited;
}

interface ServerProcess {
  readonly child: ChildProcess;
  port: number;
  readonly errors: string[];
}

async function startServer(t: TestContext, redisPort: number): Promise<ServerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE], {
    env: { ...process.env, REDIS_URL: `redis://127.0.0.1:${redisPort}` },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => stop(child, 'SIGKILL'));
  const server: ServerProcess = { child, port: 0, errors: [] };
  const stderr: string[] = [];
  child.stderr!.on('data', (chunk: Buffer) => stderr.push(chunk.toString()));
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const event = JSON.parse(line) as { listening?: number; from?: string; error?: string };
    if (event.listening !== undefined) server.port = event.listening;
    // What the backplane's own onError reported (the application's client reports separately).
    if (event.error !== undefined && event.from === 'backplane') server.errors.push(event.error);
  });
  await until(() => server.port !== 0 || child.exitCode !== null, 30_000, 'the server process listening');
  assert.notEqual(server.port, 0, stderr.join(''));
  return server;
}

describe('Redis backplane: two server processes joined by a real Redis', { skip, timeout: 120_000 }, () => {
  test('publishes cross both ways, once each; Redis restarted: the loss is reported and delivery resumes', async (t) => {
    const redisPort = await freePort();
    let redis = await startRedis(t, redisPort);
    const [one, two] = await Promise.all([startServer(t, redisPort), startServer(t, redisPort)]);
    const clients: WsClient[] = [];
    t.after(() => {
      for (const client of clients) client.close();
    });
    const { client: a1 } = await openIdentified(one.port, clients);
    const { client: a2 } = await openIdentified(one.port, clients);
    const { client: b1, pid: pidB } = await openIdentified(two.port, clients);
    const { client: b2 } = await openIdentified(two.port, clients);
    assert.equal(pidB, two.child.pid);
    for (const client of [a1, a2, b1, b2]) assert.equal(await request(client, 'sub room'), 'ok true');

    // One → two, then two → one: each message once per subscriber, in order, never to its sender,
    // and never a second time to the publishing server's own subscribers (Redis hands it back).
    await crossed(a1, [a2], [b1, b2], 'one');
    await crossed(b2, [b1], [a1, a2], 'two');
    for (let i = 0; i < 20; i++) assert.equal(await request(a2, `pub room burst-${i}`), 'published 1');
    for (let i = 0; i < 20; i++) {
      for (const client of [a1, b1, b2]) assert.equal(await client.next(5000), `burst-${i}`);
    }
    const extra = await Promise.all([a1, a2, b1, b2].map((client) => client.next(300).then(String, () => null)));
    assert.deepEqual(extra, [null, null, null, null], 'nothing delivered twice, nothing back to the sender');

    // Redis goes away: each server's backplane reports it, and keeps serving its own subscribers meanwhile.
    const errorsBefore = [one.errors.length, two.errors.length];
    await stop(redis, 'SIGKILL');
    await until(() => one.errors.length > errorsBefore[0]! && two.errors.length > errorsBefore[1]!, 10_000, 'the lost Redis connection reported by both backplanes');
    assert.equal(await request(a1, 'pub room while-down'), 'published 1');
    assert.equal(await a2.next(5000), 'while-down');

    // Redis is back on the same port: the clients reconnect and subscribe again, delivery resumes.
    redis = await startRedis(t, redisPort);
    // node-redis queues a publish made while disconnected and sends it on reconnection: the message
    // published while Redis was down may still reach the other server, late and once.
    await withTimeout(crossed(a1, [a2], [b1, b2], 'after', new Set(['while-down'])), 60_000, 'delivery after the restart');
    await withTimeout(crossed(b1, [b2], [a1, a2], 'back'), 60_000, 'delivery back after the restart');
    t.diagnostic(`reported while Redis was down: ${[...one.errors, ...two.errors].slice(0, 2).join(' | ')}`);

    await Promise.all([stop(one.child, 'SIGTERM'), stop(two.child, 'SIGTERM')]);
    assert.deepEqual([one.child.exitCode, two.child.exitCode], [0, 0]);
    await stop(redis, 'SIGTERM');
  });
});

describe('Redis backplane: bounded while Redis does not answer', () => {
  test('publishes Redis has not answered stop at maxPendingBytes: the rest are dropped and reported, and publishing resumes', async () => {
    // A client whose publishes stay pending until released, as node-redis's queue does while Redis is away.
    const pending: { size: number; settle: () => void }[] = [];
    const subscriber: RedisSubscriberLike = {
      connect: () => Promise.resolve(),
      subscribe: () => Promise.resolve(),
      unsubscribe: () => Promise.resolve(),
      on: () => undefined,
      close: () => Promise.resolve(),
    };
    const client: RedisClientLike = {
      duplicate: () => subscriber,
      publish: (_channel, message) => new Promise((resolve) => pending.push({ size: message.length, settle: () => resolve(1) })),
    };
    const errors: string[] = [];
    const backplane = redisBackplane({ client, maxPendingBytes: 64 * 1024, onError: (error) => errors.push(String(error)) });
    backplane.start({ deliver: () => undefined, close: () => Promise.resolve() });
    const message = Buffer.alloc(1000);
    for (let i = 0; i < 10_000; i++) backplane.publish('t', message, true);
    const held = pending.reduce((sum, entry) => sum + entry.size, 0);
    assert.ok(held <= 64 * 1024, `${held} bytes handed to the client`);
    assert.equal(pending.length, Math.floor((64 * 1024) / 1018));
    assert.equal(errors.length, 1, 'the overflow is reported once');
    assert.match(errors[0]!, /dropping publishes/);

    // Redis answers: the drop count is reported and publishes go out again.
    for (const entry of pending.splice(0)) entry.settle();
    await sleep(0);
    assert.match(errors[1]!, /9936 publish\(es\) dropped/);
    backplane.publish('t', message, true);
    assert.equal(pending.length, 1);
    await backplane.close();
  });
});
