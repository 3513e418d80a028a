/**
 * A complete received message (RFC 6455 §5.6): its payload bytes and whether it was sent as text or
 * binary. Text is decoded lazily, so echoing or forwarding a message never decodes it.
 */
import { Opcode } from '../constants.ts';

export class Message {
  /** `text` for a text message (its payload is valid UTF-8), `binary` otherwise. */
  readonly type: 'text' | 'binary';
  private length: number;
  private payload: Buffer | null;
  private parts: readonly Buffer[] | null;
  private decoded: string | undefined;

  constructor(data: Buffer, binary: boolean) {
    this.type = binary ? 'binary' : 'text';
    this.length = data.length;
    this.payload = data;
    this.parts = null;
  }

  /** @internal A message received in several pieces, joined only when `data` is read. */
  static fromSegments(segments: readonly Buffer[], byteLength: number, binary: boolean): Message {
    const message = new Message(EMPTY, binary);
    message.length = byteLength;
    message.payload = null;
    message.parts = segments;
    return message;
  }

  /** The payload's length in bytes (without joining a payload received in pieces). */
  get byteLength(): number {
    return this.length;
  }

  /** The payload. It may be a view of the bytes read: copy it if you keep it and mutate the original. */
  get data(): Buffer {
    if (this.payload === null) {
      const parts = this.parts!;
      this.payload = parts.length === 1 ? parts[0]! : Buffer.concat(parts, this.length);
      this.parts = null;
    }
    return this.payload;
  }

  /** @internal The payload as received in pieces, or null once joined (or when it came in one). */
  get segments(): readonly Buffer[] | null {
    return this.parts;
  }

  get binary(): boolean {
    return this.type === 'binary';
  }

  /** The payload decoded as UTF-8 (validated on receipt for text messages). */
  get text(): string {
    return (this.decoded ??= this.data.toString('utf8'));
  }

  /** The payload parsed as JSON; throws SyntaxError on invalid JSON. */
  json(): unknown {
    return JSON.parse(this.text);
  }

  /** The opcode this message is sent with when echoed or forwarded. */
  get opcode(): number {
    return this.type === 'binary' ? Opcode.Binary : Opcode.Text;
  }
}

const EMPTY = Buffer.alloc(0);
