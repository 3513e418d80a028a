/**
 * A complete received message (RFC 6455 §5.6): its payload bytes and whether it was sent as text or
 * binary. Text is decoded lazily, so echoing or forwarding a message never decodes it.
 */
import { Opcode } from '../constants.ts';

export class Message {
  /** `text` for a text message (its payload is valid UTF-8), `binary` otherwise. */
  readonly type: 'text' | 'binary';
  /** The payload. It is a view: copy it if you keep it and mutate the original. */
  readonly data: Buffer;
  private decoded: string | undefined;

  constructor(data: Buffer, binary: boolean) {
    this.type = binary ? 'binary' : 'text';
    this.data = data;
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
