/**
 * A Backplane through Redis pub/sub, for servers on several machines (or processes not in one
 * cluster). The package depends on no Redis client: the application passes in its own node-redis
 * client (the `redis` package, v4 or later), which publishes; the backplane makes one `duplicate()` of
 * it for subscribing, as Redis requires (a subscribed RESP2 connection runs no other command).
 *
 * Each topic is the Redis channel `<prefix><topic>`, subscribed while this server has a local
 * subscriber. A message on the channel is this envelope, so that binary and text survive and a server
 * can recognise its own publishes (Redis delivers them back to it, and it delivered them locally):
 *
 *   byte 0: 1 (envelope version)   byte 1: 1 for binary, 0 for text   bytes 2–17: the publishing
 *   backplane's random id          bytes 18–: the message
 *
 * Redis pub/sub is at most once: what is published while a server is disconnected never reaches it.
 * node-redis reconnects by itself and subscribes its channels again; errors (the lost connection
 * included) are reported to `onError`.
 */
import { randomBytes } from 'node:crypto';
import { defaultOnError } from './options.ts';
import type { Backplane, BackplaneHost } from './topics.ts';

/** The part of a node-redis client the backplane uses (the `redis` package, v4 or later). */
export interface RedisClientLike {
  duplicate(): RedisSubscriberLike;
  publish(channel: string, message: Buffer): Promise<unknown>;
}

/** The part of a node-redis client that subscribes (see RedisClientLike.duplicate). */
export interface RedisSubscriberLike {
  connect(): Promise<unknown>;
  subscribe(channel: string, listener: (message: Buffer, channel: Buffer | string) => void, bufferMode: true): Promise<unknown>;
  unsubscribe(channel: string, listener: (message: Buffer, channel: Buffer | string) => void, bufferMode: true): Promise<unknown>;
  on(event: 'error', listener: (error: unknown) => void): unknown;
  /** v5 and later; v4 has only quit(). */
  close?(): Promise<unknown>;
  quit?(): Promise<unknown>;
}

export interface RedisBackplaneOptions {
  /** A connected node-redis client: it publishes, and its duplicate subscribes. */
  readonly client: RedisClientLike;
  /** Prefix of the Redis channel of each topic. Default `rfc6455:`. */
  readonly prefix?: string;
  /** Receives Redis errors (a lost connection, a failed publish). Default: console.error. */
  readonly onError?: (error: unknown) => void;
  /**
   * Bytes of publishes handed to the client and not yet answered by Redis above which further
   * publishes are dropped (reported to `onError`, once per episode). node-redis queues commands
   * without limit while Redis is slow or away; this bounds what that queue holds. Default 16 MiB.
   */
  readonly maxPendingBytes?: number;
}

const ENVELOPE_VERSION = 1;
const ID_SIZE = 16;
const HEADER_SIZE = 2 + ID_SIZE;

/** A Backplane through Redis (see the comment at the top of this file). */
export function redisBackplane(options: RedisBackplaneOptions): Backplane {
  const client = options.client as Partial<RedisClientLike> | null;
  if (client === null || typeof client !== 'object' || typeof client.duplicate !== 'function' || typeof client.publish !== 'function') {
    throw new TypeError('redisBackplane needs { client }: a node-redis client (the redis package, v4 or later)');
  }
  const prefix = options.prefix ?? 'rfc6455:';
  if (typeof prefix !== 'string') throw new TypeError('prefix must be a string');
  const maxPendingBytes = options.maxPendingBytes ?? 16 * 1024 * 1024;
  if (!(Number.isSafeInteger(maxPendingBytes) && maxPendingBytes >= 0)) {
    throw new RangeError(`maxPendingBytes must be a non-negative integer, got ${String(maxPendingBytes)}`);
  }
  return new RedisBackplane(options.client, prefix, options.onError ?? defaultOnError, maxPendingBytes);
}

class RedisBackplane implements Backplane {
  private readonly client: RedisClientLike;
  private readonly prefix: string;
  private readonly onError: (error: unknown) => void;
  /** Identifies this backplane's own publishes when Redis hands them back. */
  private readonly id = randomBytes(ID_SIZE);
  private subscriber: RedisSubscriberLike | null = null;
  /** Resolves once the subscriber is connected; commands wait for it, in order. */
  private ready: Promise<void> = Promise.resolve();
  private host: BackplaneHost | null = null;
  private closed = false;
  private readonly maxPendingBytes: number;
  /** Bytes of publishes Redis has not answered yet (see RedisBackplaneOptions.maxPendingBytes). */
  private pendingBytes = 0;
  /** Publishes dropped since the pending bytes were last under the limit. */
  private dropped = 0;

  constructor(client: RedisClientLike, prefix: string, onError: (error: unknown) => void, maxPendingBytes: number) {
    this.client = client;
    this.prefix = prefix;
    this.onError = onError;
    this.maxPendingBytes = maxPendingBytes;
  }

  start(host: BackplaneHost): void {
    if (this.host !== null) throw new TypeError('a Redis backplane serves one server');
    this.host = host;
    const subscriber = this.client.duplicate();
    this.subscriber = subscriber;
    // node-redis requires an error listener; it reconnects by itself after reporting.
    subscriber.on('error', this.onError);
    this.ready = subscriber.connect().then(
      () => undefined,
      (error: unknown) => this.onError(error),
    );
  }

  subscribe(topic: string): void {
    this.command((subscriber) => subscriber.subscribe(this.prefix + topic, this.onMessage, true));
  }

  unsubscribe(topic: string): void {
    this.command((subscriber) => subscriber.unsubscribe(this.prefix + topic, this.onMessage, true));
  }

  publish(topic: string, data: Uint8Array, binary: boolean): void {
    if (this.closed) return;
    const size = HEADER_SIZE + data.length;
    // At most once: over the limit the message is not queued behind a slow or absent Redis.
    if (this.pendingBytes + size > this.maxPendingBytes) {
      if (this.dropped++ === 0) {
        this.onError(new RangeError(`Redis backplane: over ${this.maxPendingBytes} bytes of publishes unanswered; dropping publishes until Redis catches up`));
      }
      return;
    }
    const envelope = Buffer.allocUnsafe(size);
    envelope[0] = ENVELOPE_VERSION;
    envelope[1] = binary ? 1 : 0;
    this.id.copy(envelope, 2);
    envelope.set(data, HEADER_SIZE);
    this.pendingBytes += size;
    this.client.publish(this.prefix + topic, envelope).then(
      () => this.settled(size),
      (error: unknown) => {
        this.settled(size);
        this.onError(error);
      },
    );
  }

  private settled(size: number): void {
    this.pendingBytes -= size;
    if (this.dropped > 0 && this.pendingBytes <= this.maxPendingBytes / 2) {
      this.onError(new RangeError(`Redis backplane: ${this.dropped} publish(es) dropped while Redis was behind; publishing again`));
      this.dropped = 0;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const subscriber = this.subscriber;
    if (subscriber === null) return;
    await this.ready;
    try {
      await (typeof subscriber.close === 'function' ? subscriber.close() : subscriber.quit?.());
    } catch (error) {
      this.onError(error);
    }
  }

  /** Runs a subscriber command after the ones before it (and the connect), reporting its failure. */
  private command(run: (subscriber: RedisSubscriberLike) => Promise<unknown>): void {
    if (this.closed || this.subscriber === null) return;
    const subscriber = this.subscriber;
    this.ready = this.ready.then(() => (this.closed ? undefined : run(subscriber))).then(
      () => undefined,
      (error: unknown) => this.onError(error),
    );
  }

  private readonly onMessage = (message: Buffer, channel: Buffer | string): void => {
    if (message.length < HEADER_SIZE || message[0] !== ENVELOPE_VERSION) {
      this.onError(new TypeError(`a message on ${String(channel)} is not an rfc6455 envelope: ignored`));
      return;
    }
    // Our own publish, back from Redis: it was delivered locally already.
    if (this.id.equals(message.subarray(2, HEADER_SIZE))) return;
    const name = typeof channel === 'string' ? channel : channel.toString('utf8');
    const topic = name.slice(this.prefix.length);
    try {
      this.host!.deliver(topic, message.subarray(HEADER_SIZE), message[1] === 1);
    } catch (error) {
      this.onError(error);
    }
  };
}
