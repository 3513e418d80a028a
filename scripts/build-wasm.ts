/**
 * Builds the WebAssembly masking kernel: assembles wasm/mask.wat and writes its bytes into
 * src/protocol/mask-wasm.ts (a generated file, checked in, so the library needs no build step and no
 * .wasm file at run time).
 *
 *   npm run build:wasm                                   regenerate src/protocol/mask-wasm.ts
 *   node --import tsx scripts/build-wasm.ts --check      exit 1 if the checked-in file is stale
 *
 * The assembler is ours and small on purpose: it covers exactly the subset of the WebAssembly text
 * format (https://webassembly.github.io/spec/core/text/) that wasm/mask.wat uses, and rejects anything
 * else with the line it stopped at, rather than pulling in a toolchain. The subset: one module with
 * memories, functions and exports; `(param)`, `(result)` and `(local)` declarations with optional
 * `$names`; a function body of flat (unfolded) instructions; `block`/`loop`/`if`/`else`/`end` without
 * block results; `br`/`br_if` to `$labels` or depths; the i32 arithmetic and comparison instructions;
 * i32 and v128 loads and stores with `offset=`/`align=`; `i32x4.splat` and the v128 bitwise operations.
 * Binary encoding: https://webassembly.github.io/spec/core/binary/.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const WAT_PATH = join(ROOT, 'wasm', 'mask.wat');
export const GENERATED_PATH = join(ROOT, 'src', 'protocol', 'mask-wasm.ts');

/** A construct outside the supported subset, or malformed text. */
export class WatError extends Error {
  constructor(message: string, line?: number) {
    super(line === undefined ? message : `line ${line}: ${message}`);
    this.name = 'WatError';
  }
}

// ------------------------------------------------------------------------------------------ reading

interface Atom {
  readonly kind: 'atom';
  readonly text: string;
  readonly line: number;
}
interface Str {
  readonly kind: 'string';
  readonly text: string;
  readonly line: number;
}
interface List {
  readonly kind: 'list';
  readonly items: Node[];
  readonly line: number;
}
type Node = Atom | Str | List;

/** Splits the text into a tree of lists, atoms and strings; drops `;;` and `(; ;)` comments. */
function read(text: string): Node[] {
  const top: Node[] = [];
  const stack: List[] = [];
  let line = 1;
  let i = 0;
  const push = (node: Node): void => {
    const parent = stack[stack.length - 1];
    if (parent === undefined) top.push(node);
    else parent.items.push(node);
  };
  while (i < text.length) {
    const c = text[i]!;
    if (c === '\n') {
      line++;
      i++;
    } else if (c === ' ' || c === '\t' || c === '\r') {
      i++;
    } else if (text.startsWith(';;', i)) {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (text.startsWith('(;', i)) {
      const close = text.indexOf(';)', i + 2);
      if (close < 0) throw new WatError('unterminated block comment', line);
      for (let j = i; j < close; j++) if (text[j] === '\n') line++;
      i = close + 2;
    } else if (c === '(') {
      const list: List = { kind: 'list', items: [], line };
      push(list);
      stack.push(list);
      i++;
    } else if (c === ')') {
      if (stack.pop() === undefined) throw new WatError('unbalanced )', line);
      i++;
    } else if (c === '"') {
      const close = text.indexOf('"', i + 1);
      if (close < 0) throw new WatError('unterminated string', line);
      const body = text.slice(i + 1, close);
      if (body.includes('\\') || body.includes('\n')) throw new WatError('escapes in strings are not supported', line);
      push({ kind: 'string', text: body, line });
      i = close + 1;
    } else {
      let j = i;
      while (j < text.length && !' \t\r\n()";'.includes(text[j]!)) j++;
      push({ kind: 'atom', text: text.slice(i, j), line });
      i = j;
    }
  }
  if (stack.length > 0) throw new WatError('unbalanced (', stack[stack.length - 1]!.line);
  return top;
}

function head(node: Node): string | undefined {
  if (node.kind !== 'list') return undefined;
  const first = node.items[0];
  return first?.kind === 'atom' ? first.text : undefined;
}

function atomAt(list: List, index: number): Atom {
  const node = list.items[index];
  if (node?.kind !== 'atom') throw new WatError(`expected a keyword, name or number`, node?.line ?? list.line);
  return node;
}

// ------------------------------------------------------------------------------------------ encoding

function uleb(value: number | bigint): number[] {
  let v = BigInt(value);
  if (v < 0n) throw new WatError(`negative unsigned immediate ${v}`);
  const out: number[] = [];
  do {
    const byte = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v === 0n ? byte : byte | 0x80);
  } while (v !== 0n);
  return out;
}

function sleb(value: number | bigint): number[] {
  let v = BigInt(value);
  const out: number[] = [];
  for (;;) {
    const byte = Number(v & 0x7fn);
    v >>= 7n; // arithmetic shift on bigint
    const done = (v === 0n && (byte & 0x40) === 0) || (v === -1n && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

function name(text: string): number[] {
  const bytes = [...Buffer.from(text, 'utf8')];
  return [...uleb(bytes.length), ...bytes];
}

function vector(items: readonly number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

/** Parses an integer literal (decimal or 0x hex, optional sign and `_` separators). */
function integer(atom: Atom): bigint {
  const match = /^([+-]?)(0x[0-9a-fA-F_]+|[0-9_]+)$/.exec(atom.text);
  if (match === null) throw new WatError(`not an integer: ${atom.text}`, atom.line);
  const magnitude = BigInt(match[2]!.replaceAll('_', ''));
  return match[1] === '-' ? -magnitude : magnitude;
}

const VALUE_TYPES: Record<string, number> = { i32: 0x7f, i64: 0x7e, f32: 0x7d, f64: 0x7c, v128: 0x7b };

function valueType(atom: Atom): number {
  const code = VALUE_TYPES[atom.text];
  if (code === undefined) throw new WatError(`unknown value type ${atom.text}`, atom.line);
  return code;
}

/** Instructions without immediates. */
const PLAIN: Record<string, number[]> = {
  unreachable: [0x00],
  nop: [0x01],
  return: [0x0f],
  drop: [0x1a],
  'i32.eqz': [0x45],
  'i32.eq': [0x46],
  'i32.ne': [0x47],
  'i32.lt_s': [0x48],
  'i32.lt_u': [0x49],
  'i32.gt_s': [0x4a],
  'i32.gt_u': [0x4b],
  'i32.le_s': [0x4c],
  'i32.le_u': [0x4d],
  'i32.ge_s': [0x4e],
  'i32.ge_u': [0x4f],
  'i32.add': [0x6a],
  'i32.sub': [0x6b],
  'i32.mul': [0x6c],
  'i32.and': [0x71],
  'i32.or': [0x72],
  'i32.xor': [0x73],
  'i32.shl': [0x74],
  'i32.shr_s': [0x75],
  'i32.shr_u': [0x76],
  'i32.rotl': [0x77],
  'i32.rotr': [0x78],
  'i32x4.splat': [0xfd, 0x11],
  'v128.not': [0xfd, 0x4d],
  'v128.and': [0xfd, 0x4e],
  'v128.or': [0xfd, 0x50],
  'v128.xor': [0xfd, 0x51],
};

/** Loads and stores: opcode and natural alignment (log2 of bytes). */
const MEMORY_ACCESS: Record<string, { opcode: number[]; naturalAlign: number }> = {
  'i32.load': { opcode: [0x28], naturalAlign: 2 },
  'i32.load8_u': { opcode: [0x2d], naturalAlign: 0 },
  'i32.store': { opcode: [0x36], naturalAlign: 2 },
  'i32.store8': { opcode: [0x3a], naturalAlign: 0 },
  'v128.load': { opcode: [0xfd, 0x00], naturalAlign: 4 },
  'v128.store': { opcode: [0xfd, 0x0b], naturalAlign: 4 },
};

const BLOCK_OPCODES: Record<string, number> = { block: 0x02, loop: 0x03, if: 0x04 };
const EMPTY_BLOCK_TYPE = 0x40;

interface FunctionDef {
  readonly exportName: string | undefined;
  readonly params: number[];
  readonly results: number[];
  readonly locals: number[];
  readonly body: number[];
}

/** Reads `(param|local $name type)` / `(param type type ...)` into `types`, names into `names`. */
function declarations(list: List, types: number[], names: Map<string, number>): void {
  const first = list.items[1];
  if (first?.kind === 'atom' && first.text.startsWith('$')) {
    if (names.has(first.text)) throw new WatError(`duplicate local ${first.text}`, list.line);
    names.set(first.text, types.length);
    types.push(valueType(atomAt(list, 2)));
    if (list.items.length !== 3) throw new WatError('a named declaration has exactly one type', list.line);
    return;
  }
  for (let i = 1; i < list.items.length; i++) types.push(valueType(atomAt(list, i)));
}

function exportOf(list: List): string {
  const nameNode = list.items[1];
  if (nameNode?.kind !== 'string' || list.items.length !== 2) throw new WatError('expected (export "name")', list.line);
  return nameNode.text;
}

/** Encodes a function's flat instruction list, resolving local and label names. */
function encodeBody(nodes: readonly Node[], locals: Map<string, number>, localCount: number): number[] {
  const out: number[] = [];
  const labels: (string | null)[] = [];
  let i = 0;
  const next = (): Atom | undefined => {
    const node = nodes[i];
    if (node?.kind !== 'atom') return undefined;
    i++;
    return node;
  };
  const peek = (): Atom | undefined => {
    const node = nodes[i];
    return node?.kind === 'atom' ? node : undefined;
  };
  const operand = (op: Atom): Atom => {
    const atom = next();
    if (atom === undefined) throw new WatError(`${op.text} needs an operand`, op.line);
    return atom;
  };
  while (i < nodes.length) {
    const node = nodes[i]!;
    if (node.kind !== 'atom') {
      throw new WatError('folded instructions and inline declarations are not supported here', node.line);
    }
    i++;
    const op = node.text;
    const plain = PLAIN[op];
    if (plain !== undefined) {
      out.push(...plain);
      continue;
    }
    const access = MEMORY_ACCESS[op];
    if (access !== undefined) {
      let offset = 0n;
      let align = access.naturalAlign;
      for (let immediate = peek(); immediate !== undefined && /^(offset|align)=/.test(immediate.text); immediate = peek()) {
        i++;
        const [key, value] = immediate.text.split('=') as [string, string];
        const number = integer({ ...immediate, text: value });
        if (key === 'offset') {
          if (number < 0n || number > 0xffffffffn) throw new WatError(`offset out of range: ${value}`, immediate.line);
          offset = number;
        } else {
          const log2 = number > 0n && (number & (number - 1n)) === 0n ? number.toString(2).length - 1 : -1;
          if (log2 < 0 || log2 > access.naturalAlign) throw new WatError(`bad alignment for ${op}: ${value}`, immediate.line);
          align = log2;
        }
      }
      out.push(...access.opcode, ...uleb(align), ...uleb(offset));
      continue;
    }
    const blockOpcode = BLOCK_OPCODES[op];
    if (blockOpcode !== undefined) {
      const label = peek();
      if (label !== undefined && label.text.startsWith('$')) {
        i++;
        labels.push(label.text);
      } else {
        labels.push(null);
      }
      if (nodes[i]?.kind === 'list') throw new WatError('block types other than empty are not supported', nodes[i]!.line);
      out.push(blockOpcode, EMPTY_BLOCK_TYPE);
      continue;
    }
    switch (op) {
      case 'else':
        out.push(0x05);
        break;
      case 'end': {
        if (labels.pop() === undefined) throw new WatError('end without a block', node.line);
        const label = peek();
        if (label !== undefined && label.text.startsWith('$')) i++; // `end $label` repeats the label
        out.push(0x0b);
        break;
      }
      case 'br':
      case 'br_if': {
        const target = operand(node);
        let depth: number;
        if (target.text.startsWith('$')) {
          depth = labels.length - 1 - labels.lastIndexOf(target.text);
          if (depth >= labels.length) throw new WatError(`unknown label ${target.text}`, target.line);
        } else {
          depth = Number(integer(target));
        }
        out.push(op === 'br' ? 0x0c : 0x0d, ...uleb(depth));
        break;
      }
      case 'local.get':
      case 'local.set':
      case 'local.tee': {
        const target = operand(node);
        const index = target.text.startsWith('$') ? locals.get(target.text) : Number(integer(target));
        if (index === undefined || index >= localCount) throw new WatError(`unknown local ${target.text}`, target.line);
        out.push({ 'local.get': 0x20, 'local.set': 0x21, 'local.tee': 0x22 }[op], ...uleb(index));
        break;
      }
      case 'i32.const': {
        const value = integer(operand(node));
        if (value < -0x80000000n || value > 0xffffffffn) throw new WatError(`i32 out of range: ${value}`, node.line);
        out.push(0x41, ...sleb(BigInt.asIntN(32, value)));
        break;
      }
      default:
        throw new WatError(`unsupported instruction ${op}`, node.line);
    }
  }
  if (labels.length > 0) throw new WatError('a block is not closed with end');
  out.push(0x0b);
  return out;
}

function parseFunction(list: List): FunctionDef {
  let exportName: string | undefined;
  const params: number[] = [];
  const results: number[] = [];
  const locals: number[] = [];
  const names = new Map<string, number>();
  let index = 1;
  const first = list.items[1];
  if (first?.kind === 'atom' && first.text.startsWith('$')) index++; // the function's own name: unused
  for (; index < list.items.length; index++) {
    const item = list.items[index]!;
    const keyword = head(item);
    if (item.kind !== 'list' || keyword === undefined) break;
    if (keyword === 'export') exportName = exportOf(item);
    else if (keyword === 'param') {
      if (locals.length > 0 || results.length > 0) throw new WatError('param after result or local', item.line);
      declarations(item, params, names);
    } else if (keyword === 'result') {
      if (locals.length > 0) throw new WatError('result after local', item.line);
      for (let i = 1; i < item.items.length; i++) results.push(valueType(atomAt(item, i)));
    } else if (keyword === 'local') {
      const localTypes: number[] = [];
      const localNames = new Map<string, number>();
      declarations(item, localTypes, localNames);
      for (const [localName, at] of localNames) {
        if (names.has(localName)) throw new WatError(`duplicate local ${localName}`, item.line);
        names.set(localName, params.length + locals.length + at);
      }
      locals.push(...localTypes);
    } else break;
  }
  const body = encodeBody(list.items.slice(index), names, params.length + locals.length);
  return { exportName, params, results, locals, body };
}

/** Assembles the text of a module (in the subset described above) into its binary encoding. */
export function assemble(text: string): Uint8Array {
  const top = read(text);
  const module = top[0];
  if (top.length !== 1 || module?.kind !== 'list' || head(module) !== 'module') throw new WatError('expected one (module ...)');
  const memories: number[][] = [];
  const functions: FunctionDef[] = [];
  const exports: number[][] = [];
  for (const field of module.items.slice(1)) {
    if (field.kind !== 'list') throw new WatError('expected a module field', field.line);
    const keyword = head(field);
    if (keyword === 'memory') {
      let index = 1;
      const first = field.items[1];
      if (first?.kind === 'atom' && first.text.startsWith('$')) index++;
      const exportNode = field.items[index];
      if (exportNode !== undefined && head(exportNode) === 'export') {
        exports.push([...name(exportOf(exportNode as List)), 0x02, ...uleb(memories.length)]);
        index++;
      }
      const limits = field.items.slice(index).map((node) => {
        if (node.kind !== 'atom') throw new WatError('expected memory limits', node.line);
        return integer(node);
      });
      if (limits.length === 1) memories.push([0x00, ...uleb(limits[0]!)]);
      else if (limits.length === 2) memories.push([0x01, ...uleb(limits[0]!), ...uleb(limits[1]!)]);
      else throw new WatError('expected (memory min) or (memory min max)', field.line);
    } else if (keyword === 'func') {
      const fn = parseFunction(field);
      if (fn.exportName !== undefined) exports.push([...name(fn.exportName), 0x00, ...uleb(functions.length)]);
      functions.push(fn);
    } else {
      throw new WatError(`unsupported module field ${keyword ?? '?'}`, field.line);
    }
  }
  // One type per distinct signature, in order of first use.
  const types: string[] = [];
  const typeBytes: number[][] = [];
  const typeIndex = functions.map((fn) => {
    const encoded = [0x60, ...vector(fn.params.map((t) => [t])), ...vector(fn.results.map((t) => [t]))];
    const key = encoded.join(',');
    let at = types.indexOf(key);
    if (at < 0) {
      at = types.length;
      types.push(key);
      typeBytes.push(encoded);
    }
    return at;
  });
  const code = functions.map((fn) => {
    // Locals are run-length encoded by type.
    const groups: number[][] = [];
    for (let i = 0; i < fn.locals.length; ) {
      let j = i;
      while (j < fn.locals.length && fn.locals[j] === fn.locals[i]) j++;
      groups.push([...uleb(j - i), fn.locals[i]!]);
      i = j;
    }
    const body = [...vector(groups), ...fn.body];
    return [...uleb(body.length), ...body];
  });
  const bytes = [
    ...[0x00, 0x61, 0x73, 0x6d], // \0asm
    ...[0x01, 0x00, 0x00, 0x00], // version 1
    ...(typeBytes.length > 0 ? section(1, vector(typeBytes)) : []),
    ...(functions.length > 0 ? section(3, vector(typeIndex.map((t) => uleb(t)))) : []),
    ...(memories.length > 0 ? section(5, vector(memories)) : []),
    ...(exports.length > 0 ? section(7, vector(exports)) : []),
    ...(functions.length > 0 ? section(10, vector(code)) : []),
  ];
  return Uint8Array.from(bytes);
}

// ------------------------------------------------------------------------------------------ output

/** The text of src/protocol/mask-wasm.ts for the given module bytes. */
export function render(bytes: Uint8Array): string {
  const lines: string[] = [];
  for (let i = 0; i < bytes.length; i += 16) {
    const row = [...bytes.subarray(i, i + 16)].map((b) => `0x${b.toString(16).padStart(2, '0')}`);
    lines.push(`  ${row.join(', ')},`);
  }
  return [
    '/**',
    ' * GENERATED FILE, do not edit: the WebAssembly masking kernel (RFC 6455 §5.3), assembled from',
    ' * wasm/mask.wat by scripts/build-wasm.ts. After changing the .wat, regenerate it with',
    ' * `npm run build:wasm`; test/mask-wasm.test.ts fails while the two differ.',
    ' */',
    '',
    `/** The module's ${bytes.length} bytes. */`,
    'export const MASK_WASM_BYTES: Uint8Array = new Uint8Array([',
    ...lines,
    ']);',
    '',
  ].join('\n');
}

/** What src/protocol/mask-wasm.ts must contain for the current wasm/mask.wat. */
export function expectedGenerated(): string {
  return render(assemble(readFileSync(WAT_PATH, 'utf8')));
}

function main(): void {
  const expected = expectedGenerated();
  if (process.argv.includes('--check')) {
    let current = '';
    try {
      current = readFileSync(GENERATED_PATH, 'utf8');
    } catch {
      current = '';
    }
    if (current !== expected) {
      process.stderr.write('src/protocol/mask-wasm.ts is stale: run `npm run build:wasm`\n');
      process.exitCode = 1;
    }
    return;
  }
  writeFileSync(GENERATED_PATH, expected);
  process.stdout.write(`wrote ${GENERATED_PATH}\n`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) main();
