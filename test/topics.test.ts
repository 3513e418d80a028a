/**
 * Topics on one server, on the wire: subscribe, unsubscribe, publish (server and ws, the latter
 * skipping the sender), subscriptions ending with the connection, the slow-consumer policy per
 * subscriber, one encoding (and one compression) per publish, and the Backplane calls a server makes.
 * The handler is test/fixtures/topic-commands.ts: raw clients drive subscriptions with text commands.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  connect,
  prepareMessage,
  WebSocketServer,
  type Backplane,
  type BackplaneHost,
  type WebSocket,
} from '../src/index.ts';
import { Opcode, parseClosePayload, Rsv, type RawClient } from './helpers/raw-client.ts';
import { topicCommands } from './fixtures/topic-commands.ts';
import { inflate } from './helpers/deflate.ts';
import { deferred, Harness, until } from './helpers/server.ts';

const KiB = 1024;

const commands = topicCommands();

async function command(client: RawClient, text: string): Promise<string> {
  await client.sendText(text);
  const frame = await client.readFrame();
  assert.equal(frame.opcode, Opcode.Text);
  return frame.payload.toString('utf8');
}

/** The server's connection for each client, in the order the clients were opened. */
function serverSide(wss: WebSocketServer): WebSocket[] {
  return [...wss.clients];
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('topics: publish/subscribe within one server', () => {
  test('a publish reaches exactly the subscribers of its topic, as one unfragmented frame, text or binary as given', async (t) => {
    const h = new Harness(t);
    const { server: wss, port } = await h.serve(commands);
    const [a, b, c] = [await h.rawOpened(port), await h.rawOpened(port), await h.rawOpened(port)];
    assert.equal(await command(a, 'sub news'), 'ok true');
    assert.equal(await command(b, 'sub news'), 'ok true');
    assert.equal(await command(c, 'sub sports'), 'ok true');
    assert.equal(await command(a, 'sub news'), 'ok false', 'a second subscribe is a no-op');
    assert.equal(wss.subscriberCount('news'), 2);

    assert.deepEqual(wss.publish('news', 'héllo'), { sent: 2, skipped: 0, closed: 0 });
    assert.deepEqual(wss.publish('news', Buffer.from([1, 2, 3])), { sent: 2, skipped: 0, closed: 0 });
    assert.deepEqual(wss.publish('nobody', 'x'), { sent: 0, skipped: 0, closed: 0 });
    for (const client of [a, b]) {
      const text = await client.readFrame();
      assert.deepEqual([text.fin, text.rsv, text.opcode, text.masked], [true, 0, Opcode.Text, false]);
      assert.equal(text.payload.toString('utf8'), 'héllo');
      const binary = await client.readFrame();
      assert.deepEqual([binary.fin, binary.opcode], [true, Opcode.Binary]);
      assert.deepEqual([...binary.payload], [1, 2, 3]);
    }
    await c.expectSilence(100);
    assert.deepEqual(serverSide(wss).map((ws) => ws.topics), [['news'], ['news'], ['sports']]);
  });

  test('unsubscribe stops delivery; ws.publish skips the sender, who need not be subscribed', async (t) => {
    const h = new Harness(t);
    const { server: wss, port } = await h.serve(commands);
    const [a, b, c] = [await h.rawOpened(port), await h.rawOpened(port), await h.rawOpened(port)];
    for (const client of [a, b]) assert.equal(await command(client, 'sub chat'), 'ok true');
    assert.equal(await command(a, 'sub other'), 'ok true');

    assert.equal(await command(a, 'pub chat from a'), 'published 1');
    assert.equal((await b.readFrame()).payload.toString(), 'from a');
    assert.equal(await command(c, 'pub chat from c'), 'published 2', 'c is not subscribed and publishes anyway');
    assert.equal((await a.readFrame()).payload.toString(), 'from c');
    assert.equal((await b.readFrame()).payload.toString(), 'from c');
    await a.expectSilence(50);

    assert.equal(await command(b, 'unsub chat'), 'ok true');
    assert.equal(await command(b, 'unsub chat'), 'ok false');
    assert.deepEqual(wss.publish('chat', 'after'), { sent: 1, skipped: 0, closed: 0 });
    assert.equal((await a.readFrame()).payload.toString(), 'after');
    await b.expectSilence(100);
    assert.deepEqual(serverSide(wss)[0]!.topics, ['chat', 'other']);
    assert.deepEqual(serverSide(wss)[1]!.topics, []);
  });

  test('subscriptions end with the connection: a closed subscriber is gone and cannot subscribe again', async (t) => {
    const h = new Harness(t);
    const { server: wss, port } = await h.serve(commands);
    const a = await h.rawOpened(port);
    const b = await h.rawOpened(port);
    for (const client of [a, b]) assert.equal(await command(client, 'sub room'), 'ok true');
    const bSide = serverSide(wss)[1]!;
    b.destroy();
    await until(() => bSide.state === 'closed', 2000, 'b closed on the server');
    assert.equal(wss.subscriberCount('room'), 1);
    assert.deepEqual(bSide.topics, []);
    assert.equal(bSide.subscribe('room'), false);
    assert.equal(wss.subscriberCount('room'), 1);
    assert.deepEqual(wss.publish('room', 'still here'), { sent: 1, skipped: 0, closed: 0 });
    assert.equal((await a.readFrame()).payload.toString(), 'still here');
  });

  test('the publishes of one turn leave in one write per subscriber, every frame in order', async (t) => {
    const h = new Harness(t);
    const { server: wss, port, sockets } = await h.observed({}, commands);
    const clients = [await h.rawOpened(port), await h.rawOpened(port), await h.rawOpened(port)];
    for (const client of clients) assert.equal(await command(client, 'sub burst'), 'ok true');
    // Writes that reach the operating system (Node's _write/_writev), per server-side socket.
    const writes = sockets.map((socket) => {
      const counter = { count: 0 };
      const internals = socket as unknown as { _write: (...args: unknown[]) => void; _writev: (...args: unknown[]) => void };
      for (const method of ['_write', '_writev'] as const) {
        const original = internals[method];
        internals[method] = function (this: unknown, ...args: unknown[]) {
          counter.count++;
          return original.apply(this, args);
        };
      }
      return counter;
    });
    const sizes = [10, 200, 3000, 16, 70_000, 5];
    for (let i = 0; i < 20; i++) {
      const size = sizes[i % sizes.length]!;
      assert.deepEqual(wss.publish('burst', Buffer.alloc(size, i)), { sent: 3, skipped: 0, closed: 0 });
    }
    await turn();
    assert.deepEqual(writes.map((counter) => counter.count), [1, 1, 1], 'one write per subscriber for 20 publishes');
    for (const client of clients) {
      for (let i = 0; i < 20; i++) {
        const frame = await client.readFrame();
        assert.equal(frame.opcode, Opcode.Binary);
        assert.ok(frame.payload.equals(Buffer.alloc(sizes[i % sizes.length]!, i)), `publish ${i}`);
      }
    }
  });

  test('a subscriber that never reads is skipped (counted) once over maxBufferedAmount; the others get every message', async (t) => {
    const h = new Harness(t);
    const maxBufferedAmount = 128 * KiB;
    const { server: wss, port, sockets } = await h.observed({ maxBufferedAmount, outboundHighWaterMark: 32 * KiB }, commands);
    const fast = await h.rawOpened(port, { timeout: 10_000 });
    const slow = await h.rawOpened(port, { timeout: 10_000 });
    for (const client of [fast, slow]) assert.equal(await command(client, 'sub feed'), 'ok true');
    slow.pause();
    const chunk = Buffer.alloc(16 * KiB, 0x61);
    let published = 0;
    let refusal = null;
    for (; published < 10_000; published++) {
      const result = wss.publish('feed', chunk);
      if (result.skipped > 0) {
        refusal = result;
        break;
      }
      assert.deepEqual(result, { sent: 2, skipped: 0, closed: 0 });
      await turn();
      // The fast one reads as it goes.
      assert.equal((await fast.readFrame(5000)).payload.length, chunk.length);
    }
    assert.deepEqual(refusal, { sent: 1, skipped: 1, closed: 0 });
    const slowSocket = sockets[1]!;
    assert.ok(slowSocket.writableLength > maxBufferedAmount && slowSocket.writableLength <= maxBufferedAmount + chunk.length + 16, `buffered ${slowSocket.writableLength}`);
    // Bounded from now on: more publishes leave the slow one's buffer where it is.
    const buffered = slowSocket.writableLength;
    for (let i = 0; i < 20; i++) {
      assert.deepEqual(wss.publish('feed', chunk), { sent: 1, skipped: 1, closed: 0 });
      await turn();
    }
    assert.equal(slowSocket.writableLength, buffered);
    t.diagnostic(`slow subscriber skipped after ${published} publishes with ${buffered} bytes buffered`);
  });

  test('under slowConsumer "close" the slow subscriber is closed with 1008 and counted', async (t) => {
    const h = new Harness(t);
    const { server: wss, port } = await h.observed({ maxBufferedAmount: 64 * KiB, outboundHighWaterMark: 16 * KiB, slowConsumer: 'close' }, commands);
    const slow = await h.rawOpened(port, { timeout: 10_000 });
    assert.equal(await command(slow, 'sub feed'), 'ok true');
    slow.pause();
    const chunk = Buffer.alloc(16 * KiB, 0x62);
    let result = wss.publish('feed', chunk);
    for (let i = 0; i < 10_000 && result.closed === 0; i++) {
      await turn();
      result = wss.publish('feed', chunk);
    }
    assert.deepEqual(result, { sent: 0, skipped: 0, closed: 1 });
    slow.resume();
    let frame = await slow.readFrame(5000);
    while (frame.opcode === Opcode.Binary) frame = await slow.readFrame(5000);
    assert.equal(frame.opcode, Opcode.Close);
    assert.equal(parseClosePayload(frame.payload).code, 1008);
  });

  test('with permessage-deflate, a publish is compressed once for all subscribers with the same parameters', async (t) => {
    const h = new Harness(t);
    const { server: wss, port } = await h.serve(commands, { perMessageDeflate: { threshold: 16 } });
    const offer = { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate; client_max_window_bits' } };
    const clients = [await h.rawOpened(port, offer), await h.rawOpened(port, offer), await h.rawOpened(port, offer)];
    for (const client of clients) {
      await client.sendText('sub big');
      const ok = await client.readFrame();
      assert.equal(ok.opcode, Opcode.Text);
    }
    const text = 'a message long enough to be worth compressing, '.repeat(20);
    const prepared = prepareMessage(text);
    assert.deepEqual(wss.publish('big', prepared), { sent: 3, skipped: 0, closed: 0 });
    const frames = await Promise.all(clients.map((client) => client.readFrame()));
    for (const frame of frames) {
      assert.equal(frame.rsv, Rsv.Rsv1, 'compressed (RSV1)');
      assert.deepEqual(frame.payload, frames[0]!.payload, 'the same bytes to everyone');
      assert.equal(inflate(frame.payload).toString(), text);
    }
    // One compressed encoding cached on the message, for the one parameter set.
    assert.equal((prepared as unknown as { compressed: Map<number, unknown> | null }).compressed?.size, 1);
  });

  test('topics are checked: a non-empty string on a server connection, TypeError otherwise', async (t) => {
    const h = new Harness(t);
    const opened = deferred<WebSocket>();
    const { server: wss, port } = await h.serve(async (ws) => {
      await ws.accept();
      opened.resolve(ws);
      for await (const _ of ws);
    });
    const client = await connect(`ws://127.0.0.1:${port}/`);
    t.after(() => client.terminate());
    const ws = await opened.promise;
    assert.throws(() => ws.subscribe(''), TypeError);
    assert.throws(() => ws.subscribe(42 as unknown as string), TypeError);
    assert.throws(() => wss.publish('', 'x'), TypeError);
    assert.throws(() => client.subscribe('news'), /server connections/);
    assert.throws(() => client.publish('news', 'x'), /server connections/);
    assert.deepEqual(client.topics, []);
  });
});

/** A Backplane that records what the server asks of it. */
class RecordingBackplane implements Backplane {
  host: BackplaneHost | null = null;
  readonly calls: string[] = [];
  readonly published: { topic: string; data: Buffer; binary: boolean }[] = [];
  start(host: BackplaneHost): void {
    this.host = host;
  }
  subscribe(topic: string): void {
    this.calls.push(`subscribe ${topic}`);
  }
  unsubscribe(topic: string): void {
    this.calls.push(`unsubscribe ${topic}`);
  }
  publish(topic: string, data: Uint8Array, binary: boolean): void {
    this.published.push({ topic, data: Buffer.from(data), binary });
  }
  close(): Promise<void> {
    this.calls.push('close');
    return Promise.resolve();
  }
}

describe('topics: the Backplane a server drives', () => {
  test('first and last local subscriber, every publish, deliveries from elsewhere, and close', async (t) => {
    const h = new Harness(t);
    const backplane = new RecordingBackplane();
    const wss = new WebSocketServer({ backplane }).route('*', commands);
    const { port } = await h.listen(wss);
    assert.ok(backplane.host !== null, 'started with the server');
    const a = await h.rawOpened(port);
    const b = await h.rawOpened(port);
    assert.equal(await command(a, 'sub t1'), 'ok true');
    assert.equal(await command(b, 'sub t1'), 'ok true');
    assert.equal(await command(b, 'unsub t1'), 'ok true');
    assert.deepEqual(backplane.calls, ['subscribe t1'], 'only the first subscriber crosses');

    wss.publish('t1', 'text');
    wss.publish('t2', Buffer.from([9]));
    assert.deepEqual(
      backplane.published.map(({ topic, data, binary }) => [topic, [...data], binary]),
      [['t1', [...Buffer.from('text')], false], ['t2', [9], true]],
      'every publish crosses, with nobody subscribed locally too',
    );
    assert.equal((await a.readFrame()).payload.toString(), 'text');

    // A message from another server: delivered to the local subscribers only, not published again.
    backplane.host.deliver('t1', Buffer.from('from elsewhere'), false);
    backplane.host.deliver('t1', Buffer.from([0xca, 0xfe]), true);
    backplane.host.deliver('unknown', Buffer.from('x'), false);
    const text = await a.readFrame();
    assert.deepEqual([text.opcode, text.payload.toString()], [Opcode.Text, 'from elsewhere']);
    const binary = await a.readFrame();
    assert.deepEqual([binary.opcode, [...binary.payload]], [Opcode.Binary, [0xca, 0xfe]]);
    await b.expectSilence(50);
    assert.equal(backplane.published.length, 2);
    // RFC 6455 §8.1: text that is not UTF-8 is never framed as text.
    assert.throws(() => backplane.host!.deliver('t1', Buffer.from([0xff, 0xfe]), false), TypeError);

    // The last local subscriber leaves with its connection.
    a.destroy();
    await until(() => backplane.calls.includes('unsubscribe t1'), 2000, 'unsubscribe on close');
    await wss.close({ timeout: 100 });
    assert.equal(backplane.calls.at(-1), 'close');
  });

  test('an object that is not a Backplane is refused when the server is made', () => {
    assert.throws(() => new WebSocketServer({ backplane: {} as Backplane }), /backplane must implement Backplane/);
  });
});
