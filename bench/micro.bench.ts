/**
 * Micro-benchmarks of the protocol core, each beside its `ws` equivalent in the same run:
 *
 *   parse   masked client frames through our Protocol (and the bare FrameParser) vs ws's Receiver
 *   encode  server frames through our encodeFrame / encodeTextFrame vs ws's Sender.frame
 *   mask    in-place unmasking: ours as shipped, and its two engines alone (the JS word loop; the WASM
 *           SIMD kernel with its copies in and out of WASM memory, and on data already there), a byte
 *           loop, ws's JS fallback, native bufferutil
 *   utf8    validation: ours (one-shot and streaming) vs ws's isValidUTF8 and Node's buffer.isUtf8
 *
 * Run directly: `node --import tsx bench/micro.bench.ts [--quick]`, or through `npm run bench`.
 *
 * Fairness notes:
 * - Both parsers unmask in place and keep views of their input, so every iteration first copies the
 *   pristine masked bytes into a reusable input buffer (the same copy for both sides; the `copy only`
 *   row shows its cost), then feeds that buffer whole or as 1400-byte views.
 * - ws's Receiver is a Writable; it is driven through `_write(chunk, encoding, callback)` directly, as
 *   our Protocol is through `receive(chunk)`, so no stream machinery is measured on either side. Ours
 *   drains `nextEvent()` after each chunk; ws counts synchronous `message` events.
 * - ws loads native bufferutil (installed here) for unmasking payloads of 32 bytes or more, so the ws
 *   Receiver rows are ws at its fastest (Node 20 has no `http.websocketUnmask`); the targets compare
 *   against those. A second ws instance loaded with WS_NO_BUFFER_UTIL=1 shows ws as installed without
 *   the optional add-on (`ws Receiver, no bufferutil`).
 * - Sender.frame gets one options object reused across calls (ws's `send()` builds one per call), which
 *   favours ws slightly. For strings, Sender.frame is given the string without ws's private byte-length
 *   hint, so it encodes it with Buffer.from, as our encodeTextFrame encodes it: both produce bytes.
 */
import { isUtf8 } from 'node:buffer';
import { createRequire } from 'node:module';
import { dirname, join, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Opcode } from '../src/constants.ts';
import { encodeFrame, encodeTextFrame, type FrameSink } from '../src/protocol/frame-encoder.ts';
import { FrameParser, type FrameHandler } from '../src/protocol/frame-parser.ts';
import { MASK_WASM_BYTES } from '../src/protocol/mask-wasm.ts';
import { maskEngines, unmask } from '../src/protocol/mask.ts';
import { Protocol, type ProtocolSink } from '../src/protocol/protocol.ts';
import { isValidUtf8, Utf8Validator } from '../src/protocol/utf8.ts';
import { formatGroup, runGroup, type BenchCase, type GroupResult, type HarnessOptions } from './harness.ts';
import { progress } from './progress.ts';

// ------------------------------------------------------------------------------------------ ws internals

interface WsReceiver {
  _write(chunk: Buffer, encoding: string, callback: (error?: Error | null) => void): void;
  on(event: 'message', listener: (data: Buffer, isBinary: boolean) => void): unknown;
}
type WsReceiverConstructor = new (options: { isServer: boolean; maxPayload: number }) => WsReceiver;

interface WsFrameOptions {
  fin: boolean;
  opcode: number;
  mask: boolean;
  readOnly: boolean;
  rsv1: boolean;
}
interface WsSenderClass {
  frame(data: Buffer | string, options: WsFrameOptions): (Buffer | string)[];
}

interface BufferUtil {
  mask(source: Buffer, mask: Buffer, output: Buffer, offset: number, length: number): void;
  unmask(buffer: Buffer, mask: Buffer): void;
}

const require = createRequire(import.meta.url);
const ws = require('ws') as { Receiver: WsReceiverConstructor; Sender: WsSenderClass };
// ws's package exports hide lib/; an absolute path loads the very module instance ws itself uses.
const wsLib = join(dirname(require.resolve('ws/package.json')), 'lib');
const wsValidation = require(join(wsLib, 'validation.js')) as { isValidUTF8: (buffer: Buffer) => boolean };
const bufferutilDir = dirname(require.resolve('bufferutil/package.json'));
const bufferutil = require('bufferutil') as BufferUtil;
const bufferutilFallback = require(join(bufferutilDir, 'fallback.js')) as BufferUtil;

/**
 * A second instance of ws's receiver, loaded with WS_NO_BUFFER_UTIL=1 so it unmasks with its JavaScript
 * byte loop: ws as installed without its optional native add-on. The module cache entries of ws/lib are
 * set aside while it loads and put back after, so everything else keeps using the first instance.
 */
function loadWsReceiverWithoutBufferutil(): WsReceiverConstructor {
  const prefix = wsLib + sep;
  const cache = require.cache;
  const saved = new Map<string, NodeJS.Module>();
  for (const [key, module] of Object.entries(cache)) {
    if (key.startsWith(prefix) && module !== undefined) {
      saved.set(key, module);
      delete cache[key];
    }
  }
  const previous = process.env['WS_NO_BUFFER_UTIL'];
  process.env['WS_NO_BUFFER_UTIL'] = '1';
  try {
    const receiver = require(join(wsLib, 'receiver.js')) as WsReceiverConstructor;
    const bufferUtil = cache[join(wsLib, 'buffer-util.js')]?.exports as BufferUtil | undefined;
    if (bufferUtil === undefined || !String(bufferUtil.unmask).includes('mask[i & 3]')) {
      throw new Error('ws without bufferutil: buffer-util did not fall back to its JavaScript unmask');
    }
    return receiver;
  } finally {
    if (previous === undefined) delete process.env['WS_NO_BUFFER_UTIL'];
    else process.env['WS_NO_BUFFER_UTIL'] = previous;
    for (const key of Object.keys(cache)) if (key.startsWith(prefix)) delete cache[key];
    for (const [key, module] of saved) cache[key] = module;
  }
}
const WsReceiverWithoutBufferutil = loadWsReceiverWithoutBufferutil();

/** Where bufferutil was loaded from, and whether it is the native add-on rather than fallback.js. */
export function bufferutilInfo(): { native: boolean; binding: string | null } {
  let binding: string | null = null;
  try {
    binding = (require('node-gyp-build') as { path(dir: string): string }).path(bufferutilDir);
  } catch {
    binding = null;
  }
  const native = bufferutil.unmask !== bufferutilFallback.unmask && /\[native code\]/.test(String(bufferutil.unmask));
  return { native, binding };
}

// ------------------------------------------------------------------------------------------ inputs

const KiB = 1024;
const MiB = 1024 * 1024;
const CHUNK = 1400;
/** Small frames are packed into one input of about this size, as one large TCP read would hold them. */
const PACKED_INPUT = 64 * KiB;

function sizeLabel(size: number): string {
  return size >= MiB ? `${size / MiB} MiB` : size >= KiB ? `${size / KiB} KiB` : `${size} B`;
}

/** Deterministic bytes (xorshift32), so every run measures the same input. */
function pseudoRandomBytes(length: number, seed: number): Buffer {
  const bytes = Buffer.allocUnsafe(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    bytes[i] = x & 0xff;
  }
  return bytes;
}

/** Deterministic printable ASCII. */
function asciiBytes(length: number, seed: number): Buffer {
  const bytes = pseudoRandomBytes(length, seed);
  for (let i = 0; i < length; i++) bytes[i] = 0x20 + (bytes[i]! % 95);
  return bytes;
}

/** A masked client frame, built independently of the code under test. */
function maskedFrame(opcode: number, payload: Buffer, key: Buffer): Buffer {
  const length = payload.length;
  const headerSize = (length < 126 ? 2 : length < 0x10000 ? 4 : 10) + 4;
  const frame = Buffer.alloc(headerSize + length);
  frame[0] = 0x80 | opcode;
  if (length < 126) {
    frame[1] = 0x80 | length;
  } else if (length < 0x10000) {
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 0x80 | 127;
    frame.writeUInt32BE(Math.floor(length / 0x100000000), 2);
    frame.writeUInt32BE(length >>> 0, 6);
  }
  key.copy(frame, headerSize - 4);
  for (let i = 0; i < length; i++) frame[headerSize + i] = payload[i]! ^ key[i & 3]!;
  return frame;
}

interface ParseInput {
  /** Pristine masked bytes: never fed to a parser. */
  readonly template: Buffer;
  readonly frames: number;
  readonly payloads: readonly Buffer[];
}

function buildParseInput(size: number): ParseInput {
  const frameSize = (size < 126 ? 2 : size < 0x10000 ? 4 : 10) + 4 + size;
  const frames = size >= PACKED_INPUT ? 1 : Math.max(1, Math.floor(PACKED_INPUT / frameSize));
  const payloads: Buffer[] = [];
  const encoded: Buffer[] = [];
  for (let i = 0; i < frames; i++) {
    const payload = pseudoRandomBytes(size, 0x9e3779b9 ^ (size + i));
    payloads.push(payload);
    encoded.push(maskedFrame(Opcode.Binary, payload, pseudoRandomBytes(4, 0x1234567 + i)));
  }
  return { template: Buffer.concat(encoded), frames, payloads };
}

/** Views of `buffer` as a socket would deliver it: whole, or 1400-byte reads. */
function deliveries(buffer: Buffer, chunked: boolean): Buffer[] {
  if (!chunked) return [buffer];
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < buffer.length; offset += CHUNK) {
    chunks.push(buffer.subarray(offset, Math.min(offset + CHUNK, buffer.length)));
  }
  return chunks;
}

const noopProtocolSink: ProtocolSink = {
  writeFrame(): void {},
  endTransport(): void {},
  awaitTransportEnd(): void {},
};

function newProtocol(): Protocol {
  return new Protocol(noopProtocolSink, { role: 'server', maxMessageSize: 64 * MiB });
}

function newWsReceiver(): WsReceiver {
  return new ws.Receiver({ isServer: true, maxPayload: 64 * MiB });
}

function throwIfError(error?: Error | null): void {
  if (error) throw error;
}

/** Both parsers, fed a fresh copy of `input` in the given delivery, yield exactly its payloads. */
function checkParsers(input: ParseInput, chunked: boolean): void {
  const expect = (label: string, got: Buffer[]): void => {
    if (got.length !== input.frames) throw new Error(`${label}: ${got.length} messages, expected ${input.frames}`);
    got.forEach((data, i) => {
      if (!data.equals(input.payloads[i]!)) throw new Error(`${label}: message ${i} differs from its payload`);
    });
  };
  const ours: Buffer[] = [];
  const protocol = newProtocol();
  for (const chunk of deliveries(Buffer.from(input.template), chunked)) {
    protocol.receive(chunk);
    for (let event = protocol.nextEvent(); event !== undefined; event = protocol.nextEvent()) {
      if (event.type === 'close') throw new Error(`rfc6455 Protocol closed: ${event.code} ${event.reason}`);
      ours.push(Buffer.from(event.data));
    }
  }
  expect('rfc6455 Protocol', ours);
  const theirs: Buffer[] = [];
  const receiver = newWsReceiver();
  receiver.on('message', (data) => theirs.push(Buffer.from(data)));
  for (const chunk of deliveries(Buffer.from(input.template), chunked)) receiver._write(chunk, 'buffer', throwIfError);
  expect('ws Receiver', theirs);
  const plain: Buffer[] = [];
  const plainReceiver = new WsReceiverWithoutBufferutil({ isServer: true, maxPayload: 64 * MiB });
  plainReceiver.on('message', (data) => plain.push(Buffer.from(data)));
  for (const chunk of deliveries(Buffer.from(input.template), chunked)) plainReceiver._write(chunk, 'buffer', throwIfError);
  expect('ws Receiver, no bufferutil', plain);
}

// ------------------------------------------------------------------------------------------ groups

export const PARSE_SIZES = [16, KiB, 64 * KiB, MiB] as const;
export const ENCODE_SIZES = [16, KiB, 64 * KiB, MiB] as const;
export const MASK_SIZES = [16, 64, 125, 256, KiB, 4 * KiB, 16 * KiB, 64 * KiB, MiB] as const;
export const UTF8_SIZES = [16, KiB, 64 * KiB, MiB] as const;

const OURS_PROTOCOL = 'rfc6455 Protocol';
const OURS_PARSER = 'rfc6455 FrameParser';
const WS_RECEIVER = 'ws Receiver';
const WS_RECEIVER_PLAIN = 'ws Receiver, no bufferutil';

function parseGroup(size: number, chunked: boolean, options: HarnessOptions): GroupResult {
  const input = buildParseInput(size);
  checkParsers(input, chunked);
  const { template, frames } = input;
  const work = Buffer.allocUnsafe(template.length);
  const chunks = deliveries(work, chunked);
  const chunkCount = chunks.length;
  const wireBytes = template.length;

  const protocol = newProtocol();
  const ourProtocol: BenchCase = {
    name: OURS_PROTOCOL,
    unitsPerIteration: frames,
    bytesPerIteration: wireBytes,
    run(iterations) {
      let messages = 0;
      for (let n = 0; n < iterations; n++) {
        work.set(template);
        for (let c = 0; c < chunkCount; c++) {
          protocol.receive(chunks[c]!);
          for (let event = protocol.nextEvent(); event !== undefined; event = protocol.nextEvent()) {
            if (event.type === 'close') throw new Error(`rfc6455 Protocol closed: ${event.code} ${event.reason}`);
            messages++;
          }
        }
      }
      if (messages !== iterations * frames) throw new Error(`rfc6455 Protocol: ${messages} messages, expected ${iterations * frames}`);
    },
  };

  let parsedFrames = 0;
  const noopHandler: FrameHandler = {
    frameStart(): void {},
    framePayload(): void {},
    frameEnd(): void {
      parsedFrames++;
    },
  };
  const parser = new FrameParser(noopHandler, { role: 'server', maxFrameSize: 64 * MiB });
  const ourParser: BenchCase = {
    name: OURS_PARSER,
    unitsPerIteration: frames,
    bytesPerIteration: wireBytes,
    run(iterations) {
      parsedFrames = 0;
      for (let n = 0; n < iterations; n++) {
        work.set(template);
        for (let c = 0; c < chunkCount; c++) parser.push(chunks[c]!);
      }
      if (parsedFrames !== iterations * frames) throw new Error(`rfc6455 FrameParser: ${parsedFrames} frames, expected ${iterations * frames}`);
    },
  };

  let wsMessages = 0;
  const receiver = newWsReceiver();
  receiver.on('message', () => {
    wsMessages++;
  });
  const wsCase: BenchCase = {
    name: WS_RECEIVER,
    unitsPerIteration: frames,
    bytesPerIteration: wireBytes,
    run(iterations) {
      wsMessages = 0;
      for (let n = 0; n < iterations; n++) {
        work.set(template);
        for (let c = 0; c < chunkCount; c++) receiver._write(chunks[c]!, 'buffer', throwIfError);
      }
      if (wsMessages !== iterations * frames) throw new Error(`ws Receiver: ${wsMessages} messages, expected ${iterations * frames}`);
    },
  };

  let plainMessages = 0;
  const plainReceiver = new WsReceiverWithoutBufferutil({ isServer: true, maxPayload: 64 * MiB });
  plainReceiver.on('message', () => {
    plainMessages++;
  });
  const wsPlainCase: BenchCase = {
    name: WS_RECEIVER_PLAIN,
    unitsPerIteration: frames,
    bytesPerIteration: wireBytes,
    run(iterations) {
      plainMessages = 0;
      for (let n = 0; n < iterations; n++) {
        work.set(template);
        for (let c = 0; c < chunkCount; c++) plainReceiver._write(chunks[c]!, 'buffer', throwIfError);
      }
      if (plainMessages !== iterations * frames) throw new Error(`${WS_RECEIVER_PLAIN}: ${plainMessages} messages, expected ${iterations * frames}`);
    },
  };

  const copyOnly: BenchCase = {
    name: 'copy only (floor)',
    unitsPerIteration: frames,
    bytesPerIteration: wireBytes,
    run(iterations) {
      for (let n = 0; n < iterations; n++) work.set(template);
    },
  };

  const title = `parse ${sizeLabel(size)} binary, ${chunked ? '1400 B chunks' : 'whole'} (${frames} frame${frames > 1 ? 's' : ''}, ${wireBytes} B per input)`;
  return runGroup(title, 'frames', [ourProtocol, ourParser, wsCase, wsPlainCase, copyOnly], options, [
    [OURS_PROTOCOL, WS_RECEIVER],
    [OURS_PARSER, WS_RECEIVER],
    [OURS_PROTOCOL, WS_RECEIVER_PLAIN],
  ]);
}

/** ws's frame encoder on the same data, counting the bytes of the parts it returns. */
function wsFrameCase(data: Buffer | string, frameOptions: WsFrameOptions, frameBytes: number): BenchCase {
  return {
    name: 'ws Sender.frame',
    bytesPerIteration: frameBytes,
    run(iterations) {
      let total = 0;
      for (let n = 0; n < iterations; n++) {
        const list = ws.Sender.frame(data, frameOptions);
        total += list[0]!.length + (list.length > 1 ? list[1]!.length : 0);
      }
      if (total !== iterations * frameBytes) throw new Error('ws Sender.frame: wrong byte count');
    },
  };
}

function encodeGroup(size: number, text: boolean, options: HarnessOptions): GroupResult {
  let written = 0;
  const sink: FrameSink = {
    writeFrame(header, payload) {
      written += header.length + (payload === null ? 0 : payload.length);
    },
  };
  const frameOptions: WsFrameOptions = { fin: true, opcode: text ? Opcode.Text : Opcode.Binary, mask: false, readOnly: false, rsv1: false };
  const headerSize = size < 126 ? 2 : size < 0x10000 ? 4 : 10;
  const frameBytes = headerSize + size;

  // Check once that both produce the same bytes.
  const ourBytes: Buffer[] = [];
  const collect: FrameSink = {
    writeFrame(header, payload) {
      ourBytes.push(header);
      if (payload !== null) ourBytes.push(Buffer.from(payload));
    },
  };

  let ours: BenchCase;
  let theirs: BenchCase;
  if (text) {
    // ASCII text, the common case (JSON and the like); its UTF-8 byte length equals its string length.
    const string = asciiBytes(size, 0xc0ffee ^ size).toString('latin1');
    encodeTextFrame(collect, string, true, false);
    const wsBytes = ws.Sender.frame(string, frameOptions).map((part) => (typeof part === 'string' ? Buffer.from(part) : part));
    if (!Buffer.concat(ourBytes).equals(Buffer.concat(wsBytes))) throw new Error(`encode text ${size}: frames differ`);
    ours = {
      name: 'rfc6455 encodeTextFrame',
      bytesPerIteration: frameBytes,
      run(iterations) {
        written = 0;
        for (let n = 0; n < iterations; n++) encodeTextFrame(sink, string, true, false);
        if (written !== iterations * frameBytes) throw new Error('rfc6455 encodeTextFrame: wrong byte count');
      },
    };
    theirs = wsFrameCase(string, frameOptions, frameBytes);
  } else {
    const payload = pseudoRandomBytes(size, 0xbeef ^ size);
    encodeFrame(collect, Opcode.Binary, payload, true, false);
    const wsBytes = ws.Sender.frame(payload, frameOptions) as Buffer[];
    if (!Buffer.concat(ourBytes).equals(Buffer.concat(wsBytes))) throw new Error(`encode binary ${size}: frames differ`);
    ours = {
      name: 'rfc6455 encodeFrame',
      bytesPerIteration: frameBytes,
      run(iterations) {
        written = 0;
        for (let n = 0; n < iterations; n++) encodeFrame(sink, Opcode.Binary, payload, true, false);
        if (written !== iterations * frameBytes) throw new Error('rfc6455 encodeFrame: wrong byte count');
      },
    };
    theirs = wsFrameCase(payload, frameOptions, frameBytes);
  }
  // Above COPY_THRESHOLD (1 KiB) both return the binary payload by reference: MB/s there counts bytes
  // framed, not bytes touched.
  const note = !text && size > 1024 ? ', payload passed by reference' : '';
  const title = `encode ${sizeLabel(size)} ${text ? 'text from an ASCII string' : 'binary'} (server frame, unmasked${note})`;
  return runGroup(title, 'frames', [ours, theirs], options, [[ours.name, theirs.name]]);
}

/** The plain byte loop every word loop is measured against. */
function byteLoopUnmask(buffer: Uint8Array, maskBytes: Uint8Array): void {
  const length = buffer.length;
  for (let i = 0; i < length; i++) buffer[i]! ^= maskBytes[i & 3]!;
}

const OURS_UNMASK = 'rfc6455 unmask';
const JS_WORDS = 'rfc6455 JS word loop alone';
const WASM_COPIES = 'rfc6455 WASM kernel + copies in/out';
const WASM_IN_MEMORY = 'rfc6455 WASM kernel, data in WASM memory';
const WASM_IN_MEMORY_COPY_OUT = 'rfc6455 WASM kernel in memory + copy out';
const BYTE_LOOP = 'byte loop';
const WS_FALLBACK = 'ws JS fallback (bufferutil/fallback.js)';
const BUFFERUTIL = 'bufferutil (native)';

/** The part of the WebAssembly API the in-memory case uses (the project's lib settings omit it). */
interface BenchWebAssembly {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { readonly exports: Record<string, unknown> };
}

interface KernelInstance {
  readonly xor: (pointer: number, length: number, key: number) => void;
  readonly heap: Uint8Array;
}

/**
 * A second instance of the shipped masking module, its memory grown to hold `bytes`: the kernel on data
 * that already lives in WASM memory (as if the socket had read into it), with no copy in or out. The
 * library's own instance is left alone (growing its memory would detach its window).
 */
function kernelInstance(bytes: number): KernelInstance {
  const api = (globalThis as unknown as { WebAssembly: BenchWebAssembly }).WebAssembly;
  const exports = new api.Instance(new api.Module(MASK_WASM_BYTES), {}).exports;
  const memory = exports['memory'] as { readonly buffer: ArrayBuffer; grow(pages: number): number };
  const page = 64 * KiB;
  const missing = Math.ceil(bytes / page) - memory.buffer.byteLength / page;
  if (missing > 0) memory.grow(missing);
  return { xor: exports['xor'] as KernelInstance['xor'], heap: new Uint8Array(memory.buffer) };
}

function maskGroup(size: number, options: HarnessOptions): GroupResult {
  const key = 0x37fa213d;
  /** The kernel's key argument for `key` at phase 0: the key bytes in little-endian memory order. */
  const kernelKey = 0x3d21fa37;
  const maskBytes = Buffer.from([0x37, 0xfa, 0x21, 0x3d]);
  const { unmaskWords, unmaskWasm } = maskEngines;
  if (unmaskWasm === null) throw new Error('mask: the WebAssembly kernel did not load in this runtime');
  const kernel = kernelInstance(size);
  const inMemory = kernel.heap.subarray(0, size);
  // Check once that all of them agree with each other.
  const reference = pseudoRandomBytes(size, 0x5eed ^ size);
  const variants = [0, 1, 2, 3, 4, 5].map(() => Buffer.from(reference));
  unmask(variants[0]!, key);
  byteLoopUnmask(variants[1]!, maskBytes);
  bufferutilFallback.unmask(variants[2]!, maskBytes);
  bufferutil.unmask(variants[3]!, maskBytes);
  unmaskWords(variants[4]!, key, 0);
  unmaskWasm(variants[5]!, key, 0);
  inMemory.set(reference);
  kernel.xor(0, size, kernelKey);
  variants.push(Buffer.from(inMemory));
  for (const variant of variants) if (!variant.equals(variants[1]!)) throw new Error(`mask ${size}: implementations disagree`);

  const aligned = Buffer.from(reference); // byteOffset 0: the word loop needs no byte-wise head
  const misaligned = Buffer.concat([Buffer.alloc(1), reference]).subarray(1); // byteOffset 1
  const make = (name: string, body: (buffer: Buffer) => void, buffer = aligned): BenchCase => ({
    name,
    bytesPerIteration: size,
    run(iterations) {
      for (let n = 0; n < iterations; n++) body(buffer);
    },
  });
  // The rows compared with each other call their function directly (no shared closure call site).
  const cases: BenchCase[] = [
    {
      name: OURS_UNMASK,
      bytesPerIteration: size,
      run(iterations) {
        for (let n = 0; n < iterations; n++) unmask(aligned, key);
      },
    },
    {
      name: `${OURS_UNMASK}, byteOffset 1`,
      bytesPerIteration: size,
      run(iterations) {
        for (let n = 0; n < iterations; n++) unmask(misaligned, key);
      },
    },
    {
      name: JS_WORDS,
      bytesPerIteration: size,
      run(iterations) {
        for (let n = 0; n < iterations; n++) unmaskWords(aligned, key, 0);
      },
    },
    {
      name: WASM_COPIES,
      bytesPerIteration: size,
      run(iterations) {
        for (let n = 0; n < iterations; n++) unmaskWasm(aligned, key, 0);
      },
    },
    {
      name: WASM_IN_MEMORY,
      bytesPerIteration: size,
      run(iterations) {
        const xor = kernel.xor;
        for (let n = 0; n < iterations; n++) xor(0, size, kernelKey);
      },
    },
    {
      // A read path that lands socket data in WASM memory but must hand the payload on in a buffer of
      // its own (the memory is reused by the next read): the kernel where the bytes are, then one copy.
      name: WASM_IN_MEMORY_COPY_OUT,
      bytesPerIteration: size,
      run(iterations) {
        const xor = kernel.xor;
        for (let n = 0; n < iterations; n++) {
          xor(0, size, kernelKey);
          aligned.set(inMemory);
        }
      },
    },
    make(BYTE_LOOP, (buffer) => byteLoopUnmask(buffer, maskBytes)),
    make(WS_FALLBACK, (buffer) => bufferutilFallback.unmask(buffer, maskBytes)),
    {
      name: BUFFERUTIL,
      bytesPerIteration: size,
      run(iterations) {
        for (let n = 0; n < iterations; n++) bufferutil.unmask(aligned, maskBytes);
      },
    },
  ];
  return runGroup(`mask ${sizeLabel(size)} in place`, 'calls', cases, options, [
    [OURS_UNMASK, BYTE_LOOP],
    [OURS_UNMASK, WS_FALLBACK],
    [OURS_UNMASK, BUFFERUTIL],
    [JS_WORDS, BUFFERUTIL],
    [WASM_COPIES, BUFFERUTIL],
    [WASM_IN_MEMORY, BUFFERUTIL],
    [WASM_IN_MEMORY_COPY_OUT, BUFFERUTIL],
    // The crossover: where the kernel with its copies overtakes the word loop.
    [WASM_COPIES, JS_WORDS],
  ]);
}

const OURS_UTF8 = 'rfc6455 isValidUtf8';
const OURS_UTF8_STREAM = 'rfc6455 Utf8Validator (1400 B pieces)';
const WS_UTF8 = 'ws isValidUTF8';
const NODE_UTF8 = 'node buffer.isUtf8';

/** Valid UTF-8 of at most `size` bytes (cut at a code point boundary): ASCII, or 1- to 4-byte mixed. */
function utf8Input(size: number, mixed: boolean): Buffer {
  if (!mixed) return asciiBytes(size, 0xa5c11 ^ size);
  const pattern = 'Grüße, 世界! naïve café — ÅÄÖ 😀🎉 κόσμε Привет مرحبا 1234 ';
  const unit = Buffer.from(pattern, 'utf8');
  const bytes = Buffer.alloc(size + 4);
  for (let offset = 0; offset < bytes.length; offset += unit.length) unit.copy(bytes, offset);
  let end = size;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--; // a continuation byte cannot start the cut
  return Buffer.from(bytes.subarray(0, end));
}

function utf8Group(size: number, mixed: boolean, options: HarnessOptions): GroupResult {
  const input = utf8Input(size, mixed);
  const length = input.length;
  if (!isValidUtf8(input) || !isUtf8(input) || !wsValidation.isValidUTF8(input)) throw new Error(`utf8 ${size}: input invalid`);
  const pieces = deliveries(input, true);
  const pieceCount = pieces.length;
  const validator = new Utf8Validator();
  const oneShot = (name: string, check: (buffer: Buffer) => boolean): BenchCase => ({
    name,
    bytesPerIteration: length,
    run(iterations) {
      let valid = 0;
      for (let n = 0; n < iterations; n++) if (check(input)) valid++;
      if (valid !== iterations) throw new Error(`${name}: rejected valid input`);
    },
  });
  const cases: BenchCase[] = [
    {
      name: OURS_UTF8,
      bytesPerIteration: length,
      run(iterations) {
        let valid = 0;
        for (let n = 0; n < iterations; n++) if (isValidUtf8(input)) valid++;
        if (valid !== iterations) throw new Error(`${OURS_UTF8}: rejected valid input`);
      },
    },
    {
      name: OURS_UTF8_STREAM,
      bytesPerIteration: length,
      run(iterations) {
        let valid = 0;
        for (let n = 0; n < iterations; n++) {
          let ok = true;
          for (let p = 0; p < pieceCount; p++) ok = validator.write(pieces[p]!) && ok;
          if (validator.end() && ok) valid++;
        }
        if (valid !== iterations) throw new Error(`${OURS_UTF8_STREAM}: rejected valid input`);
      },
    },
    oneShot(WS_UTF8, wsValidation.isValidUTF8),
    oneShot(NODE_UTF8, isUtf8),
  ];
  return runGroup(`utf8 ${sizeLabel(size)} ${mixed ? 'mixed 1-4 byte' : 'ASCII'} (${length} B)`, 'calls', cases, options, [
    [OURS_UTF8, WS_UTF8],
    [OURS_UTF8_STREAM, WS_UTF8],
    [OURS_UTF8, NODE_UTF8],
  ]);
}

// ------------------------------------------------------------------------------------------ targets

export interface TargetResult {
  readonly target: string;
  /** Median of the per-round ratios the target is about. */
  readonly measured: number;
  readonly required: number;
  readonly pass: boolean;
}

function findRatio(groups: readonly GroupResult[], groupPrefix: string, numerator: string, denominator: string): number {
  const group = groups.find((candidate) => candidate.group.startsWith(groupPrefix));
  const ratio = group?.ratios.find((candidate) => candidate.numerator === numerator && candidate.denominator === denominator);
  return ratio?.ratio.median ?? Number.NaN;
}

function evaluateTargets(groups: readonly GroupResult[]): TargetResult[] {
  const targets: TargetResult[] = [];
  const add = (target: string, measured: number, required: number): void => {
    targets.push({ target, measured, required, pass: measured >= required });
  };
  for (const delivery of ['whole', '1400 B chunks']) {
    for (const size of PARSE_SIZES) {
      const required = size === 16 ? 2 : 1;
      const prefix = `parse ${sizeLabel(size)} binary, ${delivery}`;
      add(`${prefix}: Protocol / ws Receiver >= ${required}x`, findRatio(groups, prefix, OURS_PROTOCOL, WS_RECEIVER), required);
    }
  }
  add('mask 64 KiB: rfc6455 unmask / byte loop >= 4x', findRatio(groups, 'mask 64 KiB', OURS_UNMASK, BYTE_LOOP), 4);
  add('mask 64 KiB: rfc6455 unmask / bufferutil >= 0.6x', findRatio(groups, 'mask 64 KiB', OURS_UNMASK, BUFFERUTIL), 0.6);
  return targets;
}

export function formatTargets(targets: readonly TargetResult[]): string {
  return [
    'targets',
    ...targets.map((t) => `  ${t.pass ? 'PASS' : 'MISS'}  ${t.target}: measured ${t.measured.toFixed(2)}x`),
  ].join('\n');
}

// ------------------------------------------------------------------------------------------ entry

export interface MicroOptions {
  readonly quick: boolean;
  /** Called with each group as soon as it is measured (to print progress). */
  readonly onGroup?: (group: GroupResult) => void;
  /** Only groups whose title starts with one of these (e.g. `parse`, `mask 64 KiB`). */
  readonly filter?: readonly string[];
}

export interface MicroResults {
  readonly harness: HarnessOptions;
  readonly bufferutil: { native: boolean; binding: string | null };
  readonly groups: readonly GroupResult[];
  readonly targets: readonly TargetResult[];
}

export const QUICK_OPTIONS: HarnessOptions = { samples: 5, sampleMs: 50, warmupMs: 80 };
export const FULL_OPTIONS: HarnessOptions = { samples: 7, sampleMs: 150, warmupMs: 250 };

export function runMicro(options: { quick: boolean } & Partial<MicroOptions>): MicroResults {
  const harness = options.quick ? QUICK_OPTIONS : FULL_OPTIONS;
  const info = bufferutilInfo();
  if (!info.native) process.stderr.write('warning: bufferutil is the JavaScript fallback, not the native add-on\n');
  const plan: { title: string; run: () => GroupResult }[] = [];
  for (const chunked of [false, true]) {
    for (const size of PARSE_SIZES) {
      plan.push({ title: `parse ${sizeLabel(size)} binary, ${chunked ? '1400 B chunks' : 'whole'}`, run: () => parseGroup(size, chunked, harness) });
    }
  }
  for (const text of [false, true]) {
    for (const size of ENCODE_SIZES) {
      plan.push({ title: `encode ${sizeLabel(size)} ${text ? 'text' : 'binary'}`, run: () => encodeGroup(size, text, harness) });
    }
  }
  for (const size of MASK_SIZES) plan.push({ title: `mask ${sizeLabel(size)}`, run: () => maskGroup(size, harness) });
  for (const mixed of [false, true]) {
    for (const size of UTF8_SIZES) {
      plan.push({ title: `utf8 ${sizeLabel(size)} ${mixed ? 'mixed' : 'ASCII'}`, run: () => utf8Group(size, mixed, harness) });
    }
  }
  const filter = options.filter;
  const groups: GroupResult[] = [];
  for (const step of plan) {
    if (filter !== undefined && filter.length > 0 && !filter.some((prefix) => step.title.startsWith(prefix))) continue;
    progress.update(`micro · ${step.title}`, groups.length, plan.filter((s) => !filter?.length || filter.some((prefix) => s.title.startsWith(prefix))).length);
    const group = step.run();
    groups.push(group);
    options.onGroup?.(group);
  }
  return { harness, bufferutil: info, groups, targets: evaluateTargets(groups) };
}

/** `node --import tsx bench/micro.bench.ts [--quick] [--filter=parse,mask]`: prints the tables. */
function main(): void {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick') || process.env['BENCH_QUICK'] === '1';
  const filterArg = args.find((arg) => arg.startsWith('--filter='));
  const filter = filterArg === undefined ? [] : filterArg.slice('--filter='.length).split(',');
  const results = runMicro({ quick, filter, onGroup: (group) => console.log(`${formatGroup(group)}\n`) });
  console.log(formatTargets(results.targets.filter((target) => !Number.isNaN(target.measured))));
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) main();
