/**
 * Every core of the machine with `node:cluster`: `runWorkers()` in the primary forks the workers, which
 * share the listening port (round-robin on Linux), replaces a worker that dies, and shuts them all
 * down on SIGINT/SIGTERM; `clusterBackplane()` in each worker carries `publish()` to the others over
 * the cluster IPC channel, through the primary. No other process and no dependency is involved.
 *
 * The primary forwards a publish only to the workers that have a subscriber of its topic, never back
 * to the worker it came from (that one delivered it locally). Messages are tagged `rfc6455`, so an
 * application's own IPC messages pass untouched and never collide with ours.
 */
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import { defaultOnError } from './options.ts';
import type { Backplane, BackplaneHost } from './topics.ts';

type ClusterMessage =
  | { readonly rfc6455: 'publish'; readonly topic: string; readonly data: unknown; readonly binary: boolean }
  | { readonly rfc6455: 'subscribe' | 'unsubscribe'; readonly topic: string }
  | { readonly rfc6455: 'shutdown' };

function isClusterMessage(message: unknown): message is ClusterMessage {
  return typeof message === 'object' && message !== null && typeof (message as { rfc6455?: unknown }).rfc6455 === 'string';
}

/**
 * Bytes as they crossed the IPC channel: a Uint8Array with the `advanced` serialization runWorkers
 * sets up; a `{ type: 'Buffer', data }` object when a primary of the application's own uses JSON.
 */
function bytesOf(data: unknown): Uint8Array | null {
  if (data instanceof Uint8Array) return data;
  const json = data as { type?: unknown; data?: unknown } | null;
  if (json !== null && typeof json === 'object' && json.type === 'Buffer' && Array.isArray(json.data)) return Buffer.from(json.data as number[]);
  return null;
}

export interface WorkersOptions {
  /** Number of worker processes; 'auto' (default): one per core (`os.availableParallelism()`). */
  readonly workers?: number | 'auto';
  /**
   * How long a worker may take to close its connections on shutdown before it is killed. Default 10 s.
   * A worker closes gracefully through its server's `clusterBackplane()`; one without it is killed then.
   */
  readonly shutdownTimeout?: number;
  /** Signals on which the primary shuts every worker down, then exits. Default SIGINT and SIGTERM; [] for none. */
  readonly signals?: readonly NodeJS.Signals[];
  /**
   * A worker that exits while the pool is running is replaced after this many ms (doubling, up to 10 s,
   * while workers keep dying within a second of starting). Default 100.
   */
  readonly restartDelay?: number;
}

/** What the primary keeps per worker. */
interface LiveWorker {
  /** Topics with a subscriber there: a publish goes only where someone listens. */
  readonly topics: Set<string>;
  readonly startedAt: number;
  /** Bytes of publishes relayed to it and not yet written to its channel. */
  pendingBytes: number;
}

/** The workers `runWorkers()` started (in the primary). */
export class WorkerPool {
  /** Worker processes wanted; a dead one is replaced. */
  readonly size: number;
  private readonly shutdownTimeout: number;
  private readonly restartDelay: number;
  /** Every live worker and what the primary knows of it. */
  private readonly live = new Map<Worker, LiveWorker>();
  private failures = 0;
  /** Replacements waiting for their delay (they keep the primary alive, even with no worker left). */
  private readonly restarts = new Set<NodeJS.Timeout>();
  private closing: Promise<void> | null = null;
  private readonly signalHandler: () => void;
  private readonly signals: readonly NodeJS.Signals[];

  /** @internal Use runWorkers(). */
  constructor(options: WorkersOptions) {
    const wanted = options.workers ?? 'auto';
    const size = wanted === 'auto' ? availableParallelism() : wanted;
    if (!(Number.isSafeInteger(size) && size >= 1)) throw new RangeError(`workers must be a positive integer or 'auto', got ${String(wanted)}`);
    this.size = size;
    this.shutdownTimeout = nonNegative(options.shutdownTimeout ?? 10_000, 'shutdownTimeout');
    this.restartDelay = nonNegative(options.restartDelay ?? 100, 'restartDelay');
    this.signals = options.signals ?? ['SIGINT', 'SIGTERM'];
    this.signalHandler = () => {
      void this.close().then(() => process.exit(0));
    };
    for (const signal of this.signals) process.on(signal, this.signalHandler);
    // Buffers cross the IPC channel as bytes, not as JSON arrays of numbers.
    cluster.setupPrimary({ serialization: 'advanced' });
    cluster.on('exit', this.onExit);
    for (let i = 0; i < size; i++) this.fork();
  }

  /** The live workers. */
  get workers(): readonly Worker[] {
    return [...this.live.keys()];
  }

  /**
   * Graceful shutdown: every worker closes its servers (1001 to each client, the closing handshakes
   * bounded by the server's closeTimeout) and leaves the cluster; one still running after
   * `shutdownTimeout` is killed. Resolves when all have exited.
   */
  close(): Promise<void> {
    return (this.closing ??= this.shutdown());
  }

  private async shutdown(): Promise<void> {
    for (const signal of this.signals) process.off(signal, this.signalHandler);
    for (const timer of this.restarts) clearTimeout(timer);
    this.restarts.clear();
    const exited = [...this.live.keys()].map((worker) => this.stop(worker));
    await Promise.all(exited);
    cluster.off('exit', this.onExit);
  }

  private stop(worker: Worker): Promise<void> {
    if (worker.isDead()) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => worker.process.kill('SIGKILL'), this.shutdownTimeout);
      worker.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      try {
        worker.send({ rfc6455: 'shutdown' } satisfies ClusterMessage);
      } catch {
        worker.process.kill('SIGKILL');
      }
    });
  }

  private fork(): void {
    const worker = cluster.fork();
    this.live.set(worker, { topics: new Set(), startedAt: Date.now(), pendingBytes: 0 });
    worker.on('message', (message: unknown) => this.onMessage(worker, message));
  }

  private onMessage(from: Worker, message: unknown): void {
    if (!isClusterMessage(message)) return;
    const sender = this.live.get(from);
    if (sender === undefined) return;
    switch (message.rfc6455) {
      case 'subscribe':
        sender.topics.add(message.topic);
        break;
      case 'unsubscribe':
        sender.topics.delete(message.topic);
        break;
      case 'publish': {
        const size = byteLengthOf(message);
        for (const [worker, state] of this.live) {
          if (worker === from || !state.topics.has(message.topic) || !worker.isConnected()) continue;
          // At most once: a worker whose channel is backed up misses the message rather than queue it.
          if (state.pendingBytes + size > MAX_PENDING_IPC_BYTES) continue;
          state.pendingBytes += size;
          worker.send(message, undefined, () => {
            state.pendingBytes -= size;
          });
        }
        break;
      }
    }
  }

  private readonly onExit = (worker: Worker): void => {
    const state = this.live.get(worker);
    if (state === undefined) return;
    this.live.delete(worker);
    if (this.closing !== null) return;
    // A worker that dies right after starting would otherwise be re-forked in a tight loop.
    this.failures = Date.now() - state.startedAt < 1000 ? this.failures + 1 : 0;
    const delay = Math.min(10_000, this.restartDelay * 2 ** Math.min(this.failures, 10));
    const timer = setTimeout(() => {
      this.restarts.delete(timer);
      if (this.closing === null) this.fork();
    }, delay);
    this.restarts.add(timer);
  };
}

function nonNegative(value: number, name: string): number {
  if (!(Number.isFinite(value) && value >= 0)) throw new RangeError(`${name} must be a non-negative number, got ${String(value)}`);
  return value;
}

/**
 * In the primary: forks the workers (each runs the same script, where `cluster.isPrimary` is false)
 * and keeps them running. TypeError outside the primary.
 */
export function runWorkers(options: WorkersOptions = {}): WorkerPool {
  if (!cluster.isPrimary) throw new TypeError('runWorkers() belongs in the primary process (cluster.isPrimary)');
  return new WorkerPool(options);
}

export interface ClusterBackplaneOptions {
  /** Receives errors of the backplane (a message that could not be delivered). Default: console.error. */
  readonly onError?: (error: unknown) => void;
}

/**
 * A Backplane between the workers of `runWorkers()`, over the cluster IPC channel. It also closes the
 * server gracefully (1001 to every client) and leaves the cluster when the pool shuts down or the
 * worker gets SIGINT/SIGTERM, so the worker exits once idle. TypeError outside a cluster worker.
 */
export function clusterBackplane(options: ClusterBackplaneOptions = {}): Backplane {
  if (!cluster.isWorker || typeof process.send !== 'function') {
    throw new TypeError('clusterBackplane() belongs in a cluster worker (cluster.isWorker)');
  }
  return new ClusterBackplane(options.onError ?? defaultOnError);
}

const SIGNALS = ['SIGINT', 'SIGTERM'] as const;

/**
 * Bytes of publishes not yet written to the IPC channel above which further ones are dropped, in a
 * worker (towards the primary) and in the primary (towards each worker): Node queues IPC messages
 * without limit, and a publisher faster than the channel must not grow that queue without bound.
 */
const MAX_PENDING_IPC_BYTES = 16 * 1024 * 1024;

function byteLengthOf(message: ClusterMessage): number {
  return message.rfc6455 === 'publish' ? (bytesOf(message.data)?.length ?? 0) + message.topic.length + 64 : 64;
}

class ClusterBackplane implements Backplane {
  private host: BackplaneHost | null = null;
  private readonly onError: (error: unknown) => void;
  private pendingBytes = 0;
  private dropped = 0;

  constructor(onError: (error: unknown) => void) {
    this.onError = onError;
  }

  start(host: BackplaneHost): void {
    if (this.host !== null) throw new TypeError('a cluster backplane serves one server');
    this.host = host;
    process.on('message', this.onMessage);
    // Ctrl-C reaches every process of the terminal's group, the workers too: a worker closes its
    // connections gracefully (1001) instead of dying under its clients.
    for (const signal of SIGNALS) process.on(signal, this.shutdown);
  }

  subscribe(topic: string): void {
    this.send({ rfc6455: 'subscribe', topic });
  }

  unsubscribe(topic: string): void {
    this.send({ rfc6455: 'unsubscribe', topic });
  }

  publish(topic: string, data: Uint8Array, binary: boolean): void {
    this.send({ rfc6455: 'publish', topic, data, binary });
  }

  close(): Promise<void> {
    process.off('message', this.onMessage);
    for (const signal of SIGNALS) process.off(signal, this.shutdown);
    return Promise.resolve();
  }

  private send(message: ClusterMessage): void {
    // The channel is gone once the primary exited or disconnected us: nothing crosses any more.
    if (process.connected !== true) return;
    const size = byteLengthOf(message);
    // At most once: a publish over the limit is dropped (subscriptions always go: they are small and rare).
    if (message.rfc6455 === 'publish' && this.pendingBytes + size > MAX_PENDING_IPC_BYTES) {
      if (this.dropped++ === 0) this.onError(new RangeError('cluster backplane: the IPC channel is backed up; dropping publishes until it drains'));
      return;
    }
    this.pendingBytes += size;
    process.send!(message, undefined, undefined, (error: Error | null) => {
      this.pendingBytes -= size;
      if (this.dropped > 0 && this.pendingBytes <= MAX_PENDING_IPC_BYTES / 2) {
        this.onError(new RangeError(`cluster backplane: ${this.dropped} publish(es) dropped while the IPC channel was backed up`));
        this.dropped = 0;
      }
      if (error !== null) this.onError(error);
    });
  }

  private readonly onMessage = (message: unknown): void => {
    if (!isClusterMessage(message)) return;
    const host = this.host!;
    if (message.rfc6455 === 'publish') {
      const data = bytesOf(message.data);
      try {
        if (data === null) throw new TypeError('a cluster publish arrived without its bytes');
        host.deliver(message.topic, data, message.binary);
      } catch (error) {
        this.onError(error);
      }
    } else if (message.rfc6455 === 'shutdown') {
      this.shutdown();
    }
  };

  /** Closes the server (1001 to every client), then leaves the cluster: the worker exits once idle. */
  private readonly shutdown = (): void => {
    void this.host!.close().then(
      () => cluster.worker?.disconnect(),
      (error: unknown) => {
        this.onError(error);
        cluster.worker?.disconnect();
      },
    );
  };
}
