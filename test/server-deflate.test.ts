/**
 * permessage-deflate (RFC 7692) on the wire: the negotiation as the 101 states it, compressed frames
 * made by hand (raw deflate, sync flush, the 00 00 ff ff tail stripped, RSV1 on the first frame) and
 * the server's frames inflated back, the violations and their close codes, and interop with the `ws`
 * client and Node's built-in WebSocket.
 *
 * Everything compressed or inflated here goes through node:zlib directly, never through src/: a
 * persistent zlib stream for context takeover (as browsers and `ws` do it), where the server keeps its
 * history as a preset dictionary instead, so the two are checked against each other.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { on } from 'node:events';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { describe, test, type TestContext } from 'node:test';
import { createDeflateRaw, createInflateRaw, type DeflateRaw, type InflateRaw } from 'node:zlib';
import WsWebSocket from 'ws';
import type { Handler, PerMessageDeflateOptions, ServerOptions } from '../src/index.ts';
import { bytesOf, compress, FLUSH_TAIL, flushThrough, inflate } from './helpers/deflate.ts';
import { createRng, readFrames, serverFrame } from './helpers/frames.ts';
import { acceptFor, Opcode, Rsv, type FrameSpec, type RawClient, type ServerFrame } from './helpers/raw-client.ts';
import { deferred, Harness, until, withTimeout } from './helpers/server.ts';

const KiB = 1024;
const MiB = 1024 * KiB;

const echo: Handler = async (ws) => {
  await ws.accept();
  for await (const message of ws) await ws.send(message);
};

// ------------------------------------------------------------------ compression, independently of src/

/**
 * A zlib stream kept for a whole connection and flushed with Z_SYNC_FLUSH after each message: its
 * LZ77 window carries over from one message to the next (context takeover, RFC 7692 §7.1.1).
 */
class PersistentZlib {
  readonly #stream: DeflateRaw | InflateRaw;

  private constructor(stream: DeflateRaw | InflateRaw) {
    this.#stream = stream;
  }

  static deflater(t: TestContext, windowBits = 15): PersistentZlib {
    const zlib = new PersistentZlib(createDeflateRaw({ windowBits }));
    t.after(() => zlib.#stream.close());
    return zlib;
  }

  static inflater(t: TestContext, windowBits = 15): PersistentZlib {
    const zlib = new PersistentZlib(createInflateRaw({ windowBits }));
    t.after(() => zlib.#stream.close());
    return zlib;
  }

  /** The next message compressed with the history of the previous ones, tail removed (§7.2.1). */
  async compress(data: Uint8Array | string): Promise<Buffer> {
    const output = await flushThrough(this.#stream, bytesOf(data));
    assert.deepEqual(output.subarray(-4), FLUSH_TAIL, 'a sync flush ends with 00 00 ff ff');
    return output.subarray(0, -4);
  }

  /** The next message inflated with the history of the previous ones (§7.2.2). */
  inflate(payload: Uint8Array): Promise<Buffer> {
    return flushThrough(this.#stream, Buffer.concat([payload, FLUSH_TAIL]));
  }
}

/** Texts longer than this repeat a block of this size (made word by word, which is slow). */
const TEXT_BLOCK = 64 * KiB;

/**
 * A text of exactly `bytes` UTF-8 bytes, of words drawn from a small vocabulary (so it compresses, but
 * not to nothing) with 2-, 3- and 4-byte characters.
 */
function textOfBytes(bytes: number, seed = 7): string {
  if (bytes > TEXT_BLOCK) {
    return textOfBytes(TEXT_BLOCK, seed).repeat(Math.floor(bytes / TEXT_BLOCK)) + textOfBytes(bytes % TEXT_BLOCK, seed + 1);
  }
  const rng = createRng(seed);
  const words = ['permessage', 'deflate', 'wörld', '€uro', '😀', 'frame', 'RSV1', 'context', 'takeover', 'window'];
  const parts: string[] = [];
  let length = 0;
  for (;;) {
    const word = `${rng.pick(words)} `;
    const size = Buffer.byteLength(word);
    if (length + size > bytes) {
      parts.push('a'.repeat(bytes - length));
      break;
    }
    parts.push(word);
    length += size;
  }
  const text = parts.join('');
  assert.equal(Buffer.byteLength(text), bytes);
  return text;
}

// ------------------------------------------------------------------ raw-client helpers

const OFFER = 'permessage-deflate';

/** A raw client that offered `extensions` and was accepted. */
function openWith(h: Harness, port: number, extensions: string | readonly string[] | null = OFFER): Promise<RawClient> {
  return h.rawOpened(port, extensions === null ? {} : { headers: { 'Sec-WebSocket-Extensions': extensions } });
}

/** Frames of one message compressed as a whole and cut into `pieces` frames, RSV1 on the first only. */
function compressedFrames(opcode: number, compressed: Buffer, pieces: number): FrameSpec[] {
  const size = Math.ceil(compressed.length / pieces);
  const frames: FrameSpec[] = [];
  for (let index = 0; index < pieces; index++) {
    frames.push({
      opcode: index === 0 ? opcode : Opcode.Continuation,
      rsv: index === 0 ? Rsv.Rsv1 : 0,
      fin: index === pieces - 1,
      payload: compressed.subarray(index * size, (index + 1) * size),
    });
  }
  return frames;
}

/** The server's frame is one whole compressed message (RSV1, FIN, unmasked) that inflates to `expected`. */
function assertCompressed(frame: ServerFrame, opcode: number, expected: Uint8Array | string, windowBits = 15): void {
  assert.equal(frame.opcode, opcode);
  assert.equal(frame.fin, true);
  assert.equal(frame.masked, false);
  assert.equal(frame.rsv, Rsv.Rsv1, 'RSV1 set (RFC 7692 §6)');
  assert.ok(inflate(frame.payload, windowBits).equals(bytesOf(expected)), 'the payload inflates to the message');
}

/** The server's frame is one whole uncompressed message: RSV1 clear, the payload as is. */
function assertPlain(frame: ServerFrame, opcode: number, expected: Uint8Array | string): void {
  assert.equal(frame.opcode, opcode);
  assert.equal(frame.fin, true);
  assert.equal(frame.masked, false);
  assert.equal(frame.rsv, 0, 'RSV1 clear');
  assert.ok(frame.payload.equals(bytesOf(expected)), 'the payload is the message');
}

// ------------------------------------------------------------------ negotiation

/** A deflate echo server whose handler records each connection's `ws.extensions`. */
async function negotiatingServer(h: Harness, perMessageDeflate: ServerOptions['perMessageDeflate']): Promise<{ port: number; seen: string[] }> {
  const seen: string[] = [];
  const { port } = await h.serve(
    async (ws) => {
      await ws.accept();
      seen.push(ws.extensions);
      for await (const message of ws) await ws.send(message);
    },
    perMessageDeflate === undefined ? {} : { perMessageDeflate },
  );
  return { port, seen };
}

/** Offers `offer` and checks the 101's Sec-WebSocket-Extensions (absent for '') and ws.extensions. */
async function assertNegotiated(h: Harness, port: number, seen: string[], offer: string | readonly string[], expected: string): Promise<RawClient> {
  const count = seen.length;
  const client = await openWith(h, port, offer);
  const what = JSON.stringify(offer);
  const response = client.response!;
  assert.equal(response.status, 101, what);
  const fields = response.rawHeaders.filter(([name]) => name.toLowerCase() === 'sec-websocket-extensions').map(([, value]) => value);
  assert.deepEqual(fields, expected === '' ? [] : [expected], `Sec-WebSocket-Extensions for ${what}`);
  await until(() => seen.length > count, 2000, 'the handler accepting');
  assert.equal(seen.at(-1), expected, `ws.extensions for ${what}`);
  return client;
}

describe('negotiation on the wire', () => {
  test('one offer: the 101 states exactly the accepted parameters, and ws.extensions is the same string', async (t) => {
    const h = new Harness(t);
    const { port, seen } = await negotiatingServer(h, true);
    // Defaults: server_no_context_takeover always stated; the client's history allowed; 15-bit windows.
    const cases: [string, string][] = [
      ['permessage-deflate', 'permessage-deflate; server_no_context_takeover'],
      ['permessage-deflate; client_max_window_bits', 'permessage-deflate; server_no_context_takeover'],
      ['permessage-deflate; client_max_window_bits=10', 'permessage-deflate; server_no_context_takeover; client_max_window_bits=10'],
      ['permessage-deflate; client_max_window_bits="9"', 'permessage-deflate; server_no_context_takeover; client_max_window_bits=9'],
      ['permessage-deflate; server_max_window_bits=12', 'permessage-deflate; server_no_context_takeover; server_max_window_bits=12'],
      ['permessage-deflate; server_max_window_bits=15', 'permessage-deflate; server_no_context_takeover; server_max_window_bits=15'],
      ['permessage-deflate; client_no_context_takeover', 'permessage-deflate; server_no_context_takeover; client_no_context_takeover'],
      ['permessage-deflate; server_no_context_takeover', 'permessage-deflate; server_no_context_takeover'],
      [
        'permessage-deflate; client_no_context_takeover; server_no_context_takeover; client_max_window_bits=8; server_max_window_bits=8',
        'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=8; client_max_window_bits=8',
      ],
      ['x-webkit-deflate-frame, permessage-deflate', 'permessage-deflate; server_no_context_takeover'],
    ];
    for (const [offer, expected] of cases) await assertNegotiated(h, port, seen, offer, expected);
  });

  test('several offers: the first with an unknown parameter is skipped and the second accepted (ws answers 400 here)', async (t) => {
    const h = new Harness(t);
    const { port, seen } = await negotiatingServer(h, true);
    const cases: [string, string][] = [
      ['permessage-deflate; unknown_parameter, permessage-deflate; client_max_window_bits=12', 'permessage-deflate; server_no_context_takeover; client_max_window_bits=12'],
      ['permessage-deflate; server_max_window_bits=16, permessage-deflate', 'permessage-deflate; server_no_context_takeover'],
      ['permessage-deflate; server_max_window_bits, permessage-deflate; server_max_window_bits=11', 'permessage-deflate; server_no_context_takeover; server_max_window_bits=11'],
      ['permessage-deflate; client_no_context_takeover=1, permessage-deflate; client_no_context_takeover', 'permessage-deflate; server_no_context_takeover; client_no_context_takeover'],
      ['permessage-deflate; server_no_context_takeover; server_no_context_takeover, permessage-deflate', 'permessage-deflate; server_no_context_takeover'],
      ['permessage-deflate; client_max_window_bits=010, permessage-deflate; client_max_window_bits=10', 'permessage-deflate; server_no_context_takeover; client_max_window_bits=10'],
    ];
    for (const [offer, expected] of cases) await assertNegotiated(h, port, seen, offer, expected);
  });

  test('offers on several header lines are one list, in order', async (t) => {
    const h = new Harness(t);
    const { port, seen } = await negotiatingServer(h, true);
    await assertNegotiated(h, port, seen, ['x-webkit-deflate-frame', 'permessage-deflate; server_max_window_bits=10'], 'permessage-deflate; server_no_context_takeover; server_max_window_bits=10');
    await assertNegotiated(
      h,
      port,
      seen,
      ['permessage-deflate; bogus=1', 'permessage-deflate; client_max_window_bits=11', 'permessage-deflate'],
      'permessage-deflate; server_no_context_takeover; client_max_window_bits=11',
    );
  });

  test('malformed or unacceptable offers: 101 without Sec-WebSocket-Extensions, and RSV1 is then a violation', async (t) => {
    const h = new Harness(t);
    const { port, seen } = await negotiatingServer(h, true);
    const offers = [
      'permessage-deflate; client_max_window_bits="10',
      'permessage-deflate; =5',
      'permessage-deflate; client_max_window_bits=1 0',
      'permessage-deflate; server_max_window_bits=7',
      'permessage-deflate; client_max_window_bits=16',
      'permessage-deflate; server_max_window_bits',
      'permessage-deflate; unknown_parameter',
      'x-webkit-deflate-frame',
      ';;, ,',
      '"permessage-deflate"',
    ];
    for (const offer of offers) {
      const client = await assertNegotiated(h, port, seen, offer, '');
      await client.sendText('plain');
      assertPlain(await client.readFrame(), Opcode.Text, 'plain');
    }
    // The last connection did not negotiate the extension: a compressed frame fails it (RFC 6455 §5.2).
    const client = await assertNegotiated(h, port, seen, 'permessage-deflate; server_max_window_bits=7', '');
    await client.sendFrame({ opcode: Opcode.Text, rsv: Rsv.Rsv1, payload: compress('x') });
    assert.equal((await client.expectClose()).code, 1002);
  });

  test('the server’s settings shape the response', async (t) => {
    const h = new Harness(t);
    const cases: [PerMessageDeflateOptions, string, string][] = [
      [{ serverNoContextTakeover: false }, 'permessage-deflate', 'permessage-deflate'],
      [{ serverNoContextTakeover: false }, 'permessage-deflate; server_no_context_takeover', 'permessage-deflate; server_no_context_takeover'],
      [{ clientNoContextTakeover: true }, 'permessage-deflate', 'permessage-deflate; server_no_context_takeover; client_no_context_takeover'],
      [{ serverMaxWindowBits: 10 }, 'permessage-deflate', 'permessage-deflate; server_no_context_takeover; server_max_window_bits=10'],
      [{ serverMaxWindowBits: 10 }, 'permessage-deflate; server_max_window_bits=9', 'permessage-deflate; server_no_context_takeover; server_max_window_bits=9'],
      [{ clientMaxWindowBits: 10 }, 'permessage-deflate; client_max_window_bits', 'permessage-deflate; server_no_context_takeover; client_max_window_bits=10'],
      [{ clientMaxWindowBits: 10 }, 'permessage-deflate; client_max_window_bits=12', 'permessage-deflate; server_no_context_takeover; client_max_window_bits=10'],
      [{ clientMaxWindowBits: 10 }, 'permessage-deflate; client_max_window_bits=9', 'permessage-deflate; server_no_context_takeover; client_max_window_bits=9'],
      // RFC 7692 §7.1.2.2: without client_max_window_bits in the offer the response may not limit it.
      [{ clientMaxWindowBits: 10 }, 'permessage-deflate', 'permessage-deflate; server_no_context_takeover'],
    ];
    for (const [settings, offer, expected] of cases) {
      const { port, seen } = await negotiatingServer(h, settings);
      await assertNegotiated(h, port, seen, offer, expected);
    }
  });

  test('a server without perMessageDeflate (or with false) accepts no extension', async (t) => {
    const h = new Harness(t);
    for (const option of [undefined, false]) {
      const { port, seen } = await negotiatingServer(h, option);
      await assertNegotiated(h, port, seen, 'permessage-deflate; client_max_window_bits', '');
    }
  });
});

// ------------------------------------------------------------------ compressed messages

describe('compressed messages on the wire (raw client)', () => {
  test('text and binary compressed by the client: echoes of 1024 bytes and more are compressed, smaller ones plain', async (t) => {
    const h = new Harness(t);
    const { port } = await h.serve(echo, { perMessageDeflate: true });
    const client = await openWith(h, port);
    for (const size of [1, 1023, 1024, 64 * KiB]) {
      const text = textOfBytes(size);
      const binary = randomBytes(size);
      await client.sendFrame({ opcode: Opcode.Text, rsv: Rsv.Rsv1, payload: compress(text) });
      await client.sendFrame({ opcode: Opcode.Binary, rsv: Rsv.Rsv1, payload: compress(binary) });
      const [textEcho, binaryEcho] = [await client.readFrame(), await client.readFrame()];
      if (size >= 1024) {
        assertCompressed(textEcho, Opcode.Text, text);
        assertCompressed(binaryEcho, Opcode.Binary, binary);
      } else {
        assertPlain(textEcho, Opcode.Text, text);
        assertPlain(binaryEcho, Opcode.Binary, binary);
      }
    }
    // Uncompressed messages are allowed on the same connection (RFC 7692 §6: RSV1 per message); the
    // echo follows the threshold, not how the message came.
    const text = textOfBytes(4 * KiB);
    await client.sendText(text);
    assertCompressed(await client.readFrame(), Opcode.Text, text);
    await client.sendText('small');
    assertPlain(await client.readFrame(), Opcode.Text, 'small');
  });

  test('the threshold counts UTF-8 bytes, not characters (text and binary sent by the handler)', async (t) => {
    const h = new Harness(t);
    const messages: (string | Buffer)[] = [
      '€'.repeat(341), // 1023 bytes
      '€'.repeat(341) + 'a', // 1024 bytes
      'é'.repeat(511) + 'a', // 1023 bytes
      '😀'.repeat(256), // 1024 bytes, 512 UTF-16 code units
      'a'.repeat(1023),
      Buffer.alloc(1023, 0x61),
      Buffer.alloc(1024, 0x61),
    ];
    const { port } = await h.serve(
      async (ws) => {
        await ws.accept();
        for (const message of messages) await ws.send(message);
      },
      { perMessageDeflate: true },
    );
    const client = await openWith(h, port);
    for (const message of messages) {
      const frame = await client.readFrame();
      const opcode = typeof message === 'string' ? Opcode.Text : Opcode.Binary;
      if (bytesOf(message).length >= 1024) assertCompressed(frame, opcode, message);
      else assertPlain(frame, opcode, message);
    }
  });

  test('threshold 0: every message compressed, the empty one included; control frames never carry RSV1', async (t) => {
    const h = new Harness(t);
    const { port } = await h.serve(
      async (ws) => {
        await ws.accept();
        await ws.ping(Buffer.from('server ping'));
        for await (const message of ws) {
          if (!message.binary && message.text === 'close') await ws.close(4000, 'bye');
          else await ws.send(message);
        }
      },
      { perMessageDeflate: { threshold: 0 } },
    );
    const client = await openWith(h, port);
    const ping = await client.readFrame();
    assert.deepEqual([ping.opcode, ping.rsv, ping.payload.toString()], [Opcode.Ping, 0, 'server ping']);
    for (const message of ['', 'a', 'hello', Buffer.alloc(0), Buffer.of(1, 2, 3)]) {
      const opcode = typeof message === 'string' ? Opcode.Text : Opcode.Binary;
      await client.sendFrame({ opcode, payload: message });
      const frame = await client.readFrame();
      assertCompressed(frame, opcode, message);
    }
    await client.ping(Buffer.alloc(125, 0x61));
    const pong = await client.readFrame();
    assert.deepEqual([pong.opcode, pong.rsv, pong.payload.length], [Opcode.Pong, 0, 125]);
    await client.sendText('close');
    const close = await client.readFrame();
    assert.deepEqual([close.opcode, close.rsv], [Opcode.Close, 0]);
    assert.deepEqual([close.payload.readUInt16BE(0), close.payload.subarray(2).toString()], [4000, 'bye']);
  });

  test('a fragmented compressed message: RSV1 on the first frame only, a ping in between, pieces that are not UTF-8 on their own', async (t) => {
    const h = new Harness(t);
    const { port } = await h.serve(echo, { perMessageDeflate: true });
    const client = await openWith(h, port);
    for (const opcode of [Opcode.Text, Opcode.Binary]) {
      const message = opcode === Opcode.Text ? textOfBytes(8 * KiB, 3) : randomBytes(8 * KiB);
      const frames = compressedFrames(opcode, compress(message), 5);
      await client.sendFrames([...frames.slice(0, 2), { opcode: Opcode.Ping, payload: 'between' }, ...frames.slice(2)]);
      const pong = await client.readFrame();
      assert.deepEqual([pong.opcode, pong.rsv, pong.payload.toString()], [Opcode.Pong, 0, 'between']);
      assertCompressed(await client.readFrame(), opcode, message);
    }
    // A small message in 3 frames, one of them empty, comes back plain.
    const compressed = compress('tiny, fragmented');
    await client.sendFrames([
      { opcode: Opcode.Text, rsv: Rsv.Rsv1, fin: false, payload: compressed.subarray(0, 4) },
      { opcode: Opcode.Continuation, fin: false, payload: '' },
      { opcode: Opcode.Continuation, fin: true, payload: compressed.subarray(4) },
    ]);
    assertPlain(await client.readFrame(), Opcode.Text, 'tiny, fragmented');
  });

  test('the examples of RFC 7692 §7.2.3, byte for byte', async (t) => {
    const h = new Harness(t);
    const { port } = await h.serve(echo, { perMessageDeflate: true });
    const hex = (text: string): Buffer => Buffer.from(text.replaceAll(' ', ''), 'hex');
    const examples: [string, FrameSpec[]][] = [
      ['§7.2.3.1 one compressed block', [{ opcode: Opcode.Text, rsv: Rsv.Rsv1, payload: hex('f2 48 cd c9 c9 07 00') }]],
      [
        '§7.2.3.1 in two fragments',
        [
          { opcode: Opcode.Text, rsv: Rsv.Rsv1, fin: false, payload: hex('f2 48 cd') },
          { opcode: Opcode.Continuation, payload: hex('c9 c9 07 00') },
        ],
      ],
      // §7.2.3.2: the same message again, a back-reference into the previous one.
      ['§7.2.3.2 sharing the LZ77 window', [{ opcode: Opcode.Text, rsv: Rsv.Rsv1, payload: hex('f2 00 11 00 00') }]],
      ['§7.2.3.3 a block with no compression', [{ opcode: Opcode.Text, rsv: Rsv.Rsv1, payload: hex('00 05 00 fa ff 48 65 6c 6c 6f 00') }]],
      ['§7.2.3.4 a block with BFINAL set', [{ opcode: Opcode.Text, rsv: Rsv.Rsv1, payload: hex('f3 48 cd c9 c9 07 00 00') }]],
      ['§7.2.3.2 after a BFINAL block', [{ opcode: Opcode.Text, rsv: Rsv.Rsv1, payload: hex('f2 00 11 00 00') }]],
      ['§7.2.3.5 two blocks in one message', [{ opcode: Opcode.Text, rsv: Rsv.Rsv1, payload: hex('f2 48 05 00 00 00 ff ff ca c9 c9 07 00') }]],
    ];
    const client = await openWith(h, port);
    for (const [name, frames] of examples) {
      await client.sendFrames(frames);
      const frame = await client.readFrame();
      assert.equal(frame.payload.toString(), 'Hello', name);
      assertPlain(frame, Opcode.Text, 'Hello');
    }
  });

  test('an empty compressed payload is an empty message; so is the single byte 00 (an empty stored block)', async (t) => {
    const h = new Harness(t);
    const { port } = await h.serve(echo, { perMessageDeflate: true });
    const client = await openWith(h, port);
    for (const payload of [Buffer.alloc(0), Buffer.of(0x00)]) {
      for (const opcode of [Opcode.Text, Opcode.Binary]) {
        await client.sendFrame({ opcode, rsv: Rsv.Rsv1, payload });
        assertPlain(await client.readFrame(), opcode, '');
      }
    }
  });

  test('client context takeover across a full window: the server keeps the newest 32 KiB of several messages', async (t) => {
    const h = new Harness(t);
    const { port } = await h.serve(echo, { perMessageDeflate: true });
    const client = await openWith(h, port);
    const deflater = PersistentZlib.deflater(t);
    const letters = (size: number): string => randomBytes(size).toString('base64').slice(0, size);
    const a = letters(20 * KiB);
    const b = letters(20 * KiB);
    // After a and b the window holds a's last 12 KiB and all of b: c repeats a's last 10 KiB (some
    // 30 KiB back), d repeats b's start and c, e repeats the end of b across the message boundary.
    const messages = [a, b, a.slice(-10 * KiB), b.slice(0, 8 * KiB) + a.slice(-10 * KiB), letters(KiB) + b.slice(-4 * KiB)];
    for (const [index, message] of messages.entries()) {
      const compressed = await deflater.compress(message);
      if (index === 2) assert.ok(compressed.length < 100, `a 30 KiB back-reference: ${compressed.length} bytes`);
      await client.sendFrame({ opcode: Opcode.Text, rsv: Rsv.Rsv1, payload: compressed });
      assertCompressed(await client.readFrame(), Opcode.Text, message);
    }
  });

  test('client context takeover: later messages refer back into earlier ones, and the server inflates them', async (t) => {
    const h = new Harness(t);
    const { port } = await h.serve(echo, { perMessageDeflate: true });
    const client = await openWith(h, port, 'permessage-deflate; client_max_window_bits');
    assert.equal(client.response!.headers['sec-websocket-extensions'], 'permessage-deflate; server_no_context_takeover');
    const deflater = PersistentZlib.deflater(t);
    const first = textOfBytes(3 * KiB, 11);
    const messages = [first, first, `${first.slice(0, 1500)}!`, textOfBytes(2 * KiB, 12), first];
    for (const [index, message] of messages.entries()) {
      const compressed = await deflater.compress(message);
      if (index === 1) {
        // The repeat is a back-reference into the first message: a few bytes that mean nothing alone.
        const alone = compress(message).length;
        assert.ok(compressed.length < alone / 8, `the repeat compressed to ${compressed.length} bytes, ${alone} on its own`);
        assert.throws(() => inflate(compressed), 'the repeat does not inflate without the history');
      }
      // Half of them fragmented.
      await client.sendFrames(compressedFrames(Opcode.Text, compressed, index % 2 === 0 ? 1 : 3));
      // server_no_context_takeover: each echo inflates on its own.
      assertCompressed(await client.readFrame(), Opcode.Text, message);
    }
    // An uncompressed message is not part of the compressed stream (it never went through the
    // deflater): the next compressed message refers back past it, into the previous compressed one.
    await client.sendText(textOfBytes(2 * KiB, 13));
    assertCompressed(await client.readFrame(), Opcode.Text, textOfBytes(2 * KiB, 13));
    const again = await deflater.compress(first);
    assert.ok(again.length < 64, `a back-reference: ${again.length} bytes`);
    await client.sendFrame({ opcode: Opcode.Text, rsv: Rsv.Rsv1, payload: again });
    assertCompressed(await client.readFrame(), Opcode.Text, first);
  });

  test('client context takeover with client_max_window_bits=9: the server inflates with a 512-byte history', async (t) => {
    const h = new Harness(t);
    const { port } = await h.serve(echo, { perMessageDeflate: { threshold: 0 } });
    const client = await openWith(h, port, 'permessage-deflate; client_max_window_bits=9');
    assert.equal(client.response!.headers['sec-websocket-extensions'], 'permessage-deflate; server_no_context_takeover; client_max_window_bits=9');
    const deflater = PersistentZlib.deflater(t, 9);
    for (let index = 0; index < 6; index++) {
      const message = `${index}: ${textOfBytes(300 + index * 100, index % 2)}`;
      await client.sendFrame({ opcode: Opcode.Text, rsv: Rsv.Rsv1, payload: await deflater.compress(message) });
      assertCompressed(await client.readFrame(), Opcode.Text, message);
    }
  });

  test('server_max_window_bits=8: no match reaches back more than 256 bytes, within a message or into the history', async (t) => {
    // zlib cannot deflate with an 8-bit window; the server compresses with 9 bits and must still keep
    // every match within 256 bytes (and its history to the last 256 bytes). Random blocks repeated at
    // a period of 200 bytes compress; at 300 bytes, only a window wider than agreed would see them.
    const h = new Harness(t);
    const { port } = await h.serve(echo, { perMessageDeflate: { serverNoContextTakeover: false, threshold: 0 } });
    const client = await openWith(h, port, 'permessage-deflate; server_max_window_bits=8');
    assert.equal(client.response!.headers['sec-websocket-extensions'], 'permessage-deflate; server_max_window_bits=8');
    const inflater = PersistentZlib.inflater(t, 8);
    const exchange = async (message: Buffer): Promise<number> => {
      await client.sendBinary(message);
      const frame = await client.readFrame();
      assert.equal(frame.rsv, Rsv.Rsv1);
      assert.ok((await inflater.inflate(frame.payload)).equals(message), 'inflates with the history');
      return frame.payload.length;
    };
    const near = randomBytes(200);
    const far = randomBytes(300);
    assert.ok((await exchange(Buffer.concat(Array<Buffer>(12).fill(near)))) < 600, 'repeats 200 bytes back are found');
    assert.ok((await exchange(Buffer.concat(Array<Buffer>(8).fill(far)))) > 2200, 'repeats 300 bytes back are not');
    // Across messages: the last 200 bytes are in the history, 300 bytes back are not.
    await exchange(near);
    assert.ok((await exchange(near)) < 40, 'a message repeating the previous 200 bytes');
    await exchange(far);
    assert.ok((await exchange(far)) > 280, 'a message repeating the previous 300 bytes');
  });

  test('server context takeover (serverNoContextTakeover: false): echoes refer back into earlier ones', async (t) => {
    const h = new Harness(t);
    const { port } = await h.serve(echo, { perMessageDeflate: { serverNoContextTakeover: false } });
    const client = await openWith(h, port);
    assert.equal(client.response!.headers['sec-websocket-extensions'], 'permessage-deflate');
    const inflater = PersistentZlib.inflater(t);
    const message = textOfBytes(4 * KiB, 5);
    const sizes: number[] = [];
    for (let index = 0; index < 4; index++) {
      await client.sendText(message);
      const frame = await client.readFrame();
      assert.equal(frame.rsv, Rsv.Rsv1);
      assert.ok((await inflater.inflate(frame.payload)).equals(Buffer.from(message)), `echo ${index}`);
      sizes.push(frame.payload.length);
      if (index > 0) assert.throws(() => inflate(frame.payload), 'a later echo needs the history');
    }
    assert.ok(sizes.slice(1).every((size) => size < sizes[0]! / 8), `compressed sizes ${sizes.join(', ')}`);
  });
});

// ------------------------------------------------------------------ violations

/**
 * A deflate echo server (plus `options`), a bystander connection that round-trips a compressed
 * message before, and a fresh connection for each attack.
 */
async function underAttack(
  t: TestContext,
  options: ServerOptions = {},
): Promise<{ h: Harness; attacker: (offer?: string | null) => Promise<RawClient>; bystanderStillServed: () => Promise<void> }> {
  const h = new Harness(t);
  const { port } = await h.serve(echo, { perMessageDeflate: true, ...options });
  const deflate = options.perMessageDeflate !== false;
  const bystander = await openWith(h, port);
  const deflater = PersistentZlib.deflater(t);
  let round = 0;
  const bystanderStillServed = async (): Promise<void> => {
    const message = `${round++} ${textOfBytes(2 * KiB, round)}`;
    if (deflate) {
      await bystander.sendFrame({ opcode: Opcode.Text, rsv: Rsv.Rsv1, payload: await deflater.compress(message) });
      assertCompressed(await bystander.readFrame(), Opcode.Text, message);
    } else {
      await bystander.sendText(message);
      assertPlain(await bystander.readFrame(), Opcode.Text, message);
    }
  };
  await bystanderStillServed();
  return { h, attacker: (offer = OFFER) => openWith(h, port, offer), bystanderStillServed };
}

/** The server fails the connection: a close frame with `code` (RSV1 clear), then the end of TCP, nothing else. */
async function assertFailed(client: RawClient, code: number): Promise<void> {
  const frame = await client.readFrame();
  assert.equal(frame.opcode, Opcode.Close, `expected a close frame, got opcode ${frame.opcode}`);
  assert.equal(frame.rsv, 0);
  assert.equal(frame.payload.readUInt16BE(0), code, `close ${frame.payload.readUInt16BE(0)} ${frame.payload.subarray(2).toString()}`);
  await client.waitForEnd();
  assert.equal(client.buffered, 0, 'nothing after the close frame');
}

describe('violations close with the RFC codes while the server keeps serving another client', () => {
  test('RSV1 on a continuation frame → 1002 (RFC 7692 §6.1)', async (t) => {
    const { attacker, bystanderStillServed } = await underAttack(t);
    const compressed = compress(textOfBytes(2 * KiB));
    // After a compressed first frame, and after an uncompressed one.
    for (const firstRsv of [Rsv.Rsv1, 0]) {
      const client = await attacker();
      await client.sendFrames([
        { opcode: Opcode.Text, rsv: firstRsv, fin: false, payload: firstRsv === 0 ? 'plain ' : compressed.subarray(0, 100) },
        { opcode: Opcode.Continuation, rsv: Rsv.Rsv1, fin: true, payload: firstRsv === 0 ? 'more' : compressed.subarray(100) },
      ]);
      await assertFailed(client, 1002);
    }
    await bystanderStillServed();
  });

  test('RSV1 on a ping, a pong or a close → 1002 (RFC 7692 §6.1)', async (t) => {
    const { attacker, bystanderStillServed } = await underAttack(t);
    for (const opcode of [Opcode.Ping, Opcode.Pong, Opcode.Close]) {
      const client = await attacker();
      await client.sendFrame({ opcode, rsv: Rsv.Rsv1, payload: opcode === Opcode.Close ? Buffer.of(0x03, 0xe8) : 'x' });
      await assertFailed(client, 1002);
    }
    await bystanderStillServed();
  });

  test('RSV2 or RSV3 with permessage-deflate negotiated → 1002 (RFC 6455 §5.2)', async (t) => {
    const { attacker, bystanderStillServed } = await underAttack(t);
    for (const rsv of [Rsv.Rsv2, Rsv.Rsv3, Rsv.Rsv1 | Rsv.Rsv2]) {
      const client = await attacker();
      await client.sendFrame({ opcode: Opcode.Text, rsv, payload: compress('hello') });
      await assertFailed(client, 1002);
    }
    await bystanderStillServed();
  });

  test('RSV1 when permessage-deflate was not negotiated → 1002 (server without the option, or client without the offer)', async (t) => {
    const plain = await underAttack(t, { perMessageDeflate: false });
    const client = await plain.attacker();
    assert.equal(client.response!.headers['sec-websocket-extensions'], undefined);
    await client.sendFrame({ opcode: Opcode.Text, rsv: Rsv.Rsv1, payload: compress('hello') });
    await assertFailed(client, 1002);
    await plain.bystanderStillServed();

    const deflating = await underAttack(t);
    const unoffered = await deflating.attacker(null);
    assert.equal(unoffered.response!.headers['sec-websocket-extensions'], undefined);
    await unoffered.sendFrame({ opcode: Opcode.Binary, rsv: Rsv.Rsv1, payload: compress('hello') });
    await assertFailed(unoffered, 1002);
    await deflating.bystanderStillServed();
  });

  test('a compressed payload that is not a deflate stream → 1007, text or binary', async (t) => {
    const { attacker, bystanderStillServed } = await underAttack(t);
    const garbage = [
      Buffer.from([0xff, 0xff, 0xff, 0xff]), // BTYPE 11: a reserved block type
      Buffer.from([0x00, 0x05, 0x00, 0x00, 0x00, 0x61, 0x62]), // a stored block whose NLEN is not ~LEN
      Buffer.concat([compress('ok'), Buffer.from([0xfe, 0xff, 0xff])]),
    ];
    for (const payload of garbage) {
      assert.throws(() => inflate(payload), `${payload.toString('hex')} is not a deflate stream`);
      for (const opcode of [Opcode.Text, Opcode.Binary]) {
        const client = await attacker();
        await client.sendFrame({ opcode, rsv: Rsv.Rsv1, payload });
        await assertFailed(client, 1007);
      }
    }
    await bystanderStillServed();
  });

  test('compressed text that inflates to invalid UTF-8 → 1007; the same bytes as binary are echoed', async (t) => {
    const { attacker, bystanderStillServed } = await underAttack(t, { perMessageDeflate: { threshold: 0 } });
    const invalid = [
      Buffer.from([0x61, 0xc3, 0x28]), // a lead byte without its continuation
      Buffer.concat([Buffer.from(textOfBytes(3000)), Buffer.from([0xe2, 0x82])]), // ends inside a character
      Buffer.from([0xed, 0xa0, 0x80]), // an encoded surrogate
    ];
    for (const bytes of invalid) {
      const client = await attacker();
      await client.sendFrame({ opcode: Opcode.Binary, rsv: Rsv.Rsv1, payload: compress(bytes) });
      assertCompressed(await client.readFrame(), Opcode.Binary, bytes);
      await client.sendFrames(compressedFrames(Opcode.Text, compress(bytes), 2));
      await assertFailed(client, 1007);
    }
    await bystanderStillServed();
  });

  test('maxMessageSize applies to the inflated size: exactly the limit is echoed, one byte more → 1009', async (t) => {
    const limit = 64 * KiB;
    const { attacker, bystanderStillServed } = await underAttack(t, { maxMessageSize: limit });
    const client = await attacker();
    const atLimit = Buffer.alloc(limit, 0x62);
    await client.sendFrame({ opcode: Opcode.Binary, rsv: Rsv.Rsv1, payload: compress(atLimit) });
    assertCompressed(await client.readFrame(), Opcode.Binary, atLimit);
    const over = textOfBytes(limit + 1);
    const compressed = compress(over);
    assert.ok(compressed.length < limit / 2, 'small on the wire');
    await client.sendFrame({ opcode: Opcode.Text, rsv: Rsv.Rsv1, payload: compressed });
    await assertFailed(client, 1009);
    await bystanderStillServed();
  });
});

// ------------------------------------------------------------------ interop: the ws client

interface WsPeer {
  readonly ws: WsWebSocket;
  /** The Sec-WebSocket-Extensions of the 101 the ws client received. */
  readonly extensions: string | undefined;
  next(): Promise<{ data: Buffer; binary: boolean }>;
}

async function wsPeer(t: TestContext, url: string, perMessageDeflate: boolean | WsWebSocket.PerMessageDeflateOptions = true): Promise<WsPeer> {
  const ws = new WsWebSocket(url, { perMessageDeflate });
  t.after(() => ws.terminate());
  const abort = new AbortController();
  t.after(() => abort.abort());
  const messages = on(ws, 'message', { signal: abort.signal });
  const upgrade = new Promise<IncomingMessage>((resolve) => ws.once('upgrade', resolve));
  await withTimeout(
    new Promise<void>((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    }),
    2000,
    'the ws client opening',
  );
  const extensions = (await upgrade).headers['sec-websocket-extensions'];
  return {
    ws,
    extensions,
    async next() {
      const result = await withTimeout(messages.next(), 5000, 'a message to the ws client');
      const [data, binary] = result.value as [Buffer, boolean];
      return { data, binary };
    },
  };
}

/** Sends each message through `peer` and checks the echoes, all in flight at once. */
async function roundTrip(peer: WsPeer, messages: readonly (string | Buffer)[]): Promise<void> {
  for (const message of messages) peer.ws.send(message);
  for (const [index, message] of messages.entries()) {
    const { data, binary } = await peer.next();
    assert.equal(binary, typeof message !== 'string', `message ${index}: text or binary`);
    assert.ok(data.equals(bytesOf(message)), `message ${index} (${bytesOf(message).length} bytes) came back unchanged`);
  }
}

describe('interop: the ws client', () => {
  test('ws’s default offer is accepted; text and binary of 10 B, 2 KiB, 64 KiB and 4 MiB round-trip', async (t) => {
    const h = new Harness(t);
    const seen: string[] = [];
    const { url } = await h.serve(
      async (ws) => {
        await ws.accept();
        seen.push(ws.extensions);
        for await (const message of ws) await ws.send(message);
      },
      { perMessageDeflate: true },
    );
    const peer = await wsPeer(t, url);
    assert.equal(peer.extensions, 'permessage-deflate; server_no_context_takeover');
    assert.equal(peer.ws.extensions, 'permessage-deflate');
    const messages: (string | Buffer)[] = [];
    for (const size of [10, 2 * KiB, 64 * KiB, 4 * MiB]) messages.push(textOfBytes(size, size), randomBytes(size));
    await roundTrip(peer, messages);
    assert.deepEqual(seen, ['permessage-deflate; server_no_context_takeover']);
  });

  test('many similar messages in a row: ws compresses with its history, the server inflates with it', async (t) => {
    const h = new Harness(t);
    const { url } = await h.serve(echo, { perMessageDeflate: true });
    const peer = await wsPeer(t, url);
    const base = textOfBytes(2 * KiB, 21);
    const messages = Array.from({ length: 30 }, (_, index) => (index % 3 === 2 ? Buffer.from(`${index}${base}`) : `${index}${base}`));
    await roundTrip(peer, messages);
    // And a mix of sizes around the threshold, which ws sends compressed or not per message.
    await roundTrip(peer, [textOfBytes(1023, 1), textOfBytes(1024, 1), textOfBytes(1023, 1), textOfBytes(5000, 1), 'x']);
  });

  test('ws with client_max_window_bits=10, with server_no_context_takeover asked, with server_max_window_bits=10 and client_no_context_takeover', async (t) => {
    const h = new Harness(t);
    const { url } = await h.serve(echo, { perMessageDeflate: true });
    const cases: [WsWebSocket.PerMessageDeflateOptions, string][] = [
      [{ clientMaxWindowBits: 10 }, 'permessage-deflate; server_no_context_takeover; client_max_window_bits=10'],
      [{ serverNoContextTakeover: true }, 'permessage-deflate; server_no_context_takeover'],
      [
        { serverMaxWindowBits: 10, clientNoContextTakeover: true },
        'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10',
      ],
    ];
    const base = textOfBytes(8 * KiB, 31);
    for (const [options, expected] of cases) {
      const peer = await wsPeer(t, url, options);
      assert.equal(peer.extensions, expected, JSON.stringify(options));
      await roundTrip(peer, [base, `${base}!`, randomBytes(3 * KiB), base.slice(0, 2000), textOfBytes(64 * KiB, 32)]);
    }
  });

  test('server context takeover against ws’s inflater, at 15, 10 and 8 window bits', async (t) => {
    const h = new Harness(t);
    const { url } = await h.serve(echo, { perMessageDeflate: { serverNoContextTakeover: false, threshold: 0 } });
    const cases: [WsWebSocket.PerMessageDeflateOptions, string][] = [
      [{}, 'permessage-deflate'],
      [{ serverMaxWindowBits: 10 }, 'permessage-deflate; server_max_window_bits=10'],
      // zlib cannot deflate with an 8-bit window: the server compresses with 9 bits and keeps its
      // matches within 256 bytes (ws's streaming inflater would not notice a farther one inside one
      // output chunk, so this checks the round trip, not the window).
      [{ serverMaxWindowBits: 8 }, 'permessage-deflate; server_max_window_bits=8'],
    ];
    for (const [options, expected] of cases) {
      const peer = await wsPeer(t, url, options);
      assert.equal(peer.extensions, expected, JSON.stringify(options));
      const rng = createRng(41);
      const base = textOfBytes(4 * KiB, 41);
      const messages: string[] = [];
      for (let index = 0; index < 20; index++) messages.push(base.slice(rng.int(2000), 2000 + rng.int(2000)) + String(index));
      await roundTrip(peer, messages);
    }
  });

  test('a message of exactly maxMessageSize that ws compresses (incompressible: larger on the wire) is accepted', async (t) => {
    // maxMessageSize applies to the decompressed size (ServerOptions); ws compresses every message
    // from its threshold on, and random bytes grow by a few bytes per deflate block.
    const h = new Harness(t);
    const limit = 256 * KiB;
    const { url } = await h.serve(echo, { perMessageDeflate: true, maxMessageSize: limit });
    const peer = await wsPeer(t, url);
    const message = randomBytes(limit);
    assert.ok(compress(message).length > limit, 'larger compressed than the limit');
    const closed = new Promise<number>((resolve) => peer.ws.once('close', (code: number) => resolve(code)));
    peer.ws.send(message);
    const outcome = await Promise.race([peer.next().then(({ data }) => data), withTimeout(closed, 5000, 'the echo or a close')]);
    assert.ok(Buffer.isBuffer(outcome), `closed with ${String(outcome)} instead of echoing`);
    assert.ok(outcome.equals(message));
  });

  test('a ws client without perMessageDeflate gets no extension and plain frames', async (t) => {
    const h = new Harness(t);
    const { url } = await h.serve(echo, { perMessageDeflate: true });
    const peer = await wsPeer(t, url, false);
    assert.equal(peer.extensions, undefined);
    assert.equal(peer.ws.extensions, '');
    await roundTrip(peer, [textOfBytes(4 * KiB), randomBytes(4 * KiB)]);
  });
});

// ------------------------------------------------------------------ interop: Node's built-in WebSocket

describe('interop: Node’s built-in WebSocket (undici)', () => {
  test('it offers "permessage-deflate; client_max_window_bits", inflates compressed messages, and sends its own uncompressed', async (t) => {
    // A hand-made server on node:http, so what the client sends is seen byte for byte. Its upgraded
    // socket keeps the http.Server from closing: destroyed first (hooks run in the order registered).
    const sockets: Socket[] = [];
    t.after(() => {
      for (const socket of sockets) socket.destroy();
    });
    const h = new Harness(t);
    const { server: http, port } = await h.httpServer();
    const request = deferred<IncomingHttpHeaders>();
    const upgraded = deferred<Socket>();
    const received: Buffer[] = [];
    http.on('upgrade', (incoming: IncomingMessage, socket: Socket) => {
      sockets.push(socket);
      request.resolve(incoming.headers);
      socket.on('data', (chunk: Buffer) => received.push(chunk));
      socket.write(
        'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
          `Sec-WebSocket-Accept: ${acceptFor(String(incoming.headers['sec-websocket-key']))}\r\n` +
          'Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n',
      );
      upgraded.resolve(socket);
    });
    const client = await h.client(`ws://127.0.0.1:${port}`);
    const headers = await request.promise;
    assert.equal(headers['sec-websocket-extensions'], 'permessage-deflate; client_max_window_bits');
    assert.equal(client.ws.extensions, 'permessage-deflate');

    // Its messages: RSV1 clear, the payload as is, however compressible.
    const text = 'a'.repeat(4 * KiB);
    client.send(text);
    client.send(Buffer.alloc(4 * KiB));
    const total = 2 * (4 * KiB + 8);
    await until(() => received.reduce((sum, chunk) => sum + chunk.length, 0) >= total, 2000, 'the client’s frames');
    const frames = readFrames(Buffer.concat(received));
    assert.deepEqual(
      frames.map((frame) => [frame.opcode, frame.rsv, frame.masked, frame.payload.length]),
      [
        [Opcode.Text, 0, true, 4 * KiB],
        [Opcode.Binary, 0, true, 4 * KiB],
      ],
    );
    assert.equal(frames[0]!.payload.toString(), text);

    // Compressed messages to it, with context takeover (the response did not forbid it).
    const socket = await upgraded.promise;
    const deflater = PersistentZlib.deflater(t);
    const message = textOfBytes(3 * KiB, 51);
    for (const [index, opcode] of [Opcode.Text, Opcode.Text, Opcode.Binary].entries()) {
      const payload = await deflater.compress(message);
      if (index > 0) assert.ok(payload.length < 64, `a back-reference into the previous message: ${payload.length} bytes`);
      socket.write(serverFrame({ opcode, rsv: Rsv.Rsv1, payload }));
    }
    assert.equal(await client.next(), message);
    assert.equal(await client.next(), message);
    assert.deepEqual(await client.next(), Buffer.from(message));
  });

  test('against the server: negotiated (ws.extensions the same on both sides), messages round-trip with and without server context takeover', async (t) => {
    const h = new Harness(t);
    for (const settings of [{}, { serverNoContextTakeover: false, threshold: 0 }]) {
      const seen = deferred<string>();
      const { url } = await h.serve(
        async (ws) => {
          await ws.accept();
          seen.resolve(ws.extensions);
          for await (const message of ws) await ws.send(message);
        },
        { perMessageDeflate: settings },
      );
      const client = await h.client(url);
      const expected = settings.serverNoContextTakeover === false ? 'permessage-deflate' : 'permessage-deflate; server_no_context_takeover';
      assert.equal(client.ws.extensions, expected);
      assert.equal(await seen.promise, expected);
      const messages: (string | Buffer)[] = ['hi', textOfBytes(2 * KiB, 61), textOfBytes(2 * KiB, 61), randomBytes(64 * KiB), textOfBytes(64 * KiB, 62), Buffer.alloc(MiB, 0x63)];
      for (const message of messages) client.send(message);
      for (const message of messages) {
        const echoed = await client.next();
        if (typeof message === 'string') assert.equal(echoed, message);
        else assert.ok(Buffer.isBuffer(echoed) && echoed.equals(message), `binary of ${message.length} bytes`);
      }
    }
  });
});

// ------------------------------------------------------------------ broadcast

describe('broadcast', () => {
  test('a 4 KiB text to deflate and plain clients: compressed once per setting (RSV1), plain for the one without deflate', async (t) => {
    const h = new Harness(t);
    const { port, server } = await h.serve(
      async (ws) => {
        await ws.accept();
        for await (const _ of ws);
      },
      { perMessageDeflate: true },
    );
    const [a, b, narrow, plain] = [
      await openWith(h, port),
      await openWith(h, port),
      await openWith(h, port, 'permessage-deflate; server_max_window_bits=10'),
      await openWith(h, port, null),
    ];
    assert.equal(narrow.response!.headers['sec-websocket-extensions'], 'permessage-deflate; server_no_context_takeover; server_max_window_bits=10');
    await until(() => [...server.clients].filter((ws) => ws.state === 'open').length === 4, 2000, 'all open');
    // 2 KiB of random letters, twice: a 15-bit window finds the repeat 2048 bytes back, a 10-bit one cannot.
    const half = Buffer.from(randomBytes(2 * KiB).toString('base64').slice(0, 2 * KiB));
    const text = half.toString() + half.toString();
    assert.deepEqual(server.broadcast(text), { sent: 4, skipped: 0, closed: 0 });
    const [fa, fb, fn, fp] = [await a.readFrame(), await b.readFrame(), await narrow.readFrame(), await plain.readFrame()];
    assertCompressed(fa, Opcode.Text, text);
    assertCompressed(fb, Opcode.Text, text);
    assert.ok(fa.payload.equals(fb.payload), 'the same settings, the same bytes');
    assertCompressed(fn, Opcode.Text, text, 10);
    // (zlib's inflate accepts a distance beyond its window inside one output buffer, so the window is
    // checked by size: base64 is 6 bits a character, and only a 15-bit window sees the repeat.)
    t.diagnostic(`compressed: ${fa.payload.length} bytes at 15 bits, ${fn.payload.length} at 10`);
    assert.ok(fa.payload.length < 2 * KiB, `15 bits: ${fa.payload.length} bytes`);
    assert.ok(fn.payload.length > 2.75 * KiB, `10 bits: ${fn.payload.length} bytes`);
    assertPlain(fp, Opcode.Text, text);
    // A small broadcast goes out plain to everyone.
    assert.deepEqual(server.broadcast('small'), { sent: 4, skipped: 0, closed: 0 });
    for (const client of [a, b, narrow, plain]) assertPlain(await client.readFrame(), Opcode.Text, 'small');
  });

  test('with server context takeover each connection gets its own stream; broadcasts and sends share it in order', async (t) => {
    const h = new Harness(t);
    const { port, server } = await h.serve(echo, { perMessageDeflate: { serverNoContextTakeover: false } });
    const takeover = [await openWith(h, port), await openWith(h, port)];
    const shared = await openWith(h, port, 'permessage-deflate; server_no_context_takeover');
    for (const client of takeover) assert.equal(client.response!.headers['sec-websocket-extensions'], 'permessage-deflate');
    const inflaters = takeover.map(() => PersistentZlib.inflater(t));
    await until(() => [...server.clients].filter((ws) => ws.state === 'open').length === 3, 2000, 'all open');
    const news = textOfBytes(4 * KiB, 71);
    const personal = textOfBytes(3 * KiB, 72);
    // Client 0 first gets an echo of its own, so the two streams differ from the start.
    await takeover[0]!.sendText(personal);
    const first = await takeover[0]!.readFrame();
    assert.ok((await inflaters[0]!.inflate(first.payload)).equals(Buffer.from(personal)));
    for (let round = 0; round < 3; round++) {
      assert.deepEqual(server.broadcast(news), { sent: 3, skipped: 0, closed: 0 });
      for (const [index, client] of takeover.entries()) {
        const frame = await client.readFrame();
        assert.equal(frame.rsv, Rsv.Rsv1);
        assert.ok((await inflaters[index]!.inflate(frame.payload)).equals(Buffer.from(news)), `round ${round}, client ${index}`);
        if (round > 0) assert.ok(frame.payload.length < 64, `a back-reference: ${frame.payload.length} bytes`);
      }
      assertCompressed(await shared.readFrame(), Opcode.Text, news);
    }
    // A small broadcast is sent plain and stays out of the streams: the next echo still inflates.
    assert.deepEqual(server.broadcast('small'), { sent: 3, skipped: 0, closed: 0 });
    for (const client of [...takeover, shared]) assertPlain(await client.readFrame(), Opcode.Text, 'small');
    for (const [index, client] of takeover.entries()) {
      await client.sendText(personal);
      const frame = await client.readFrame();
      assert.ok((await inflaters[index]!.inflate(frame.payload)).equals(Buffer.from(personal)), `echo to client ${index}`);
    }
  });
});
