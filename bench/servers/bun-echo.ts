/**
 * Bun's native WebSocket server (`Bun.serve`, built on uWebSockets) as a peer in the end-to-end and
 * idle-memory benchmarks: the echo from Bun's documentation, binary in, binary out.
 *
 * It runs under the `bun` binary of the devDependency `@oven/bun-linux-x64` (control.ts finds it, or
 * BENCH_BUN=/path/to/bun), straight from this TypeScript file: Bun strips the types itself, and adds no
 * `__name` wrappers (see control.ts for why the Node servers are compiled instead). It speaks the same
 * IPC as the Node servers (common.ts): Bun implements `process.send` for a parent that is Node, with
 * JSON messages, Node's default. Two differences the benchmark knows about: Bun's
 * `performance.eventLoopUtilization()` is a stub (always 0), so Bun has no event-loop figure; and
 * `process.cpuUsage()` is not trusted: the benchmark reads every server's CPU time from /proc instead.
 *
 * Options chosen so that it does what the other echo servers do, no more and no less:
 * - messages up to 64 MiB (as rfc6455's and ws's echo);
 * - no idle timeout and no pings of its own (Bun's default would ping after 120 s, and the load
 *   generator treats any frame it did not ask for as an error);
 * - a per-connection send buffer limit of 64 MiB, above the most any scenario has in flight (16 ×
 *   1 MiB): past the limit Bun's `send()` drops the message, which the others never do;
 * - permessage-deflate off (Bun's default, as ws's).
 */
import { announce, FANOUT_PUBLISH_PATH, FANOUT_TOPIC, fanoutRequested, HOST, listenPort } from './common.ts';

/** The part of Bun's API this file uses (no @types/bun in the project). */
interface BunServerWebSocket {
  /** Bytes sent, -1 when queued behind backpressure, 0 when dropped. */
  send(data: string | Uint8Array): number;
  subscribe(topic: string): void;
  /** What upgrade() was given as `data`. */
  readonly data: { readonly publisher: boolean } | undefined;
}

interface BunServer {
  readonly port: number;
  upgrade(request: Request, options?: { data: { publisher: boolean } }): boolean;
  publish(topic: string, data: string | Uint8Array): number;
}

interface BunServeOptions {
  readonly hostname: string;
  readonly port: number;
  fetch(request: Request, server: BunServer): Response | undefined;
  readonly websocket: {
    open?(ws: BunServerWebSocket): void;
    message(ws: BunServerWebSocket, message: string | Uint8Array): void;
    readonly maxPayloadLength: number;
    readonly idleTimeout: number;
    readonly sendPings: boolean;
    readonly backpressureLimit: number;
    readonly closeOnBackpressureLimit: boolean;
    readonly perMessageDeflate: boolean;
  };
}

declare const Bun: {
  readonly version: string;
  serve(options: BunServeOptions): BunServer;
};

if (typeof Bun === 'undefined') throw new Error('bench/servers/bun-echo.ts runs under Bun, not Node');

const MAX_MESSAGE = 64 * 1024 * 1024;
// Fan-out (BENCH_FANOUT=1): every connection but the publisher subscribes; the publisher's messages go
// out with Bun's own server.publish (uWebSockets' topic tree).
const fanout = fanoutRequested();

const server: BunServer = Bun.serve({
  hostname: HOST,
  port: listenPort(),
  fetch(request, bunServer) {
    const publisher = new URL(request.url).pathname === FANOUT_PUBLISH_PATH;
    if (bunServer.upgrade(request, { data: { publisher } })) return undefined;
    return new Response('WebSocket only\n', { status: 426, headers: { Upgrade: 'websocket' } });
  },
  websocket: {
    open(ws) {
      if (fanout && ws.data?.publisher !== true) ws.subscribe(FANOUT_TOPIC);
    },
    message(ws, message) {
      if (fanout) server.publish(FANOUT_TOPIC, message);
      else ws.send(message);
    },
    maxPayloadLength: MAX_MESSAGE,
    idleTimeout: 0,
    sendPings: false,
    backpressureLimit: MAX_MESSAGE,
    closeOnBackpressureLimit: false,
    perMessageDeflate: false,
  },
});

announce(fanout ? 'Bun fan-out' : 'Bun echo', server.port, { library: `Bun.serve (bun@${Bun.version})`, runtime: `bun ${Bun.version}` });
