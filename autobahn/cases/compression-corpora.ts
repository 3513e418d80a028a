/**
 * The payloads of sections 12 and 13. Autobahn cuts its messages from five files shipped with the
 * testsuite (the JSON index of a conformance report, a 512x512 greyscale bitmap, the Project Gutenberg
 * text of Goethe's Faust I, an HTML report page and a PDF paper). Those files are other people's work and
 * are not copied here: each is replaced by a stand-in generated from a fixed seed, with the same size,
 * the same message type and content of the same kind, so that it compresses about as well:
 *
 * | Autobahn's file       | bytes     | sent as | stand-in (deflated size / Autobahn's file's)               |
 * |-----------------------|-----------|---------|------------------------------------------------------------|
 * | `data1.json`          |   194,056 | text    | a report index: agents, case ids, results (5% / 4%)        |
 * | `lena512.bmp`         |   263,222 | binary  | an 8-bit greyscale BMP, smooth shapes and noise (84% / 85%) |
 * | `pg2229.txt`          |   222,218 | binary  | German verse-drama word salad, UTF-8 (31% / 39%)           |
 * | `data1.html`          |   263,647 | text    | a report page: style sheet, table rows, a few non-ASCII words (7% / 6%) |
 * | `10.1.1.105.5439.pdf` | 1,042,328 | binary  | PDF objects, text streams, random (incompressible) streams (73% / 76%) |
 *
 * `useAutobahnTestData(dir)` (`npm run conformance -- --testdata DIR`) reads Autobahn's own files from
 * its `autobahntestsuite/testdata` folder instead, for a replay byte for byte.
 *
 * Messages are cut as Autobahn cuts them (`Slicer`): `length` units from where the previous message
 * ended, wrapping around to the start. A unit is a byte of a binary file and a character of a text file
 * (Autobahn slices the decoded text), so a text message of 16 characters may be more than 16 bytes.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Corpus {
  /** Autobahn's key for it (`WS_COMPRESSION_TESTDATA`). */
  readonly key: string;
  /** What the payload is, for case descriptions. */
  readonly title: string;
  /** Autobahn's file name in `autobahntestsuite/testdata`. */
  readonly file: string;
  /** Size of Autobahn's file, and of the stand-in. */
  readonly size: number;
  /** Sent as binary messages (else as text, cut by characters). */
  readonly binary: boolean;
  /** Makes the stand-in: exactly `size` bytes, the same on every run. */
  readonly generate: () => Buffer;
}

/** A corpus ready to cut: its bytes and, for text, where each character starts. */
export interface CorpusData {
  readonly bytes: Buffer;
  /** Number of units (bytes, or characters for text). */
  readonly units: number;
  /** For text: the byte offset of each character, plus the length at the end; null for binary. */
  readonly characterStarts: Uint32Array | null;
}

// ---------------------------------------------------------------- a seeded generator

/** xorshift32 (Marsaglia): a small, fast generator, so the stand-ins are the same on every run. */
class Random {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0 || 1;
  }

  /** A 32-bit unsigned integer. */
  next(): number {
    let x = this.state;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    return this.state;
  }

  /** An integer in [0, n). */
  below(n: number): number {
    return this.next() % n;
  }

  pick<T>(list: readonly T[]): T {
    return list[this.below(list.length)]!;
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.next() / 0x100000000 < p;
  }
}

/** Text pieces joined until `size` bytes, cut at a character boundary and padded with spaces to `size`. */
function textOfSize(size: number, piece: () => string): Buffer {
  const pieces: string[] = [];
  let length = 0;
  while (length < size) {
    const next = piece();
    pieces.push(next);
    length += Buffer.byteLength(next);
  }
  const bytes = Buffer.from(pieces.join(''), 'utf8');
  let end = size;
  // Back up to the start of a character: UTF-8 continuation bytes are 10xxxxxx.
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  const out = Buffer.alloc(size, 0x20);
  bytes.copy(out, 0, 0, end);
  return out;
}

const ENGLISH = (
  'data value system network message server client frame window stream buffer record index table ' +
  'result request response report page section update service account project process member order ' +
  'number amount status region country market product customer history version option feature ' +
  'the of and to in is for on with as by at from that this be are was it an or which has have new ' +
  'first last other more most many each some all any over under between after before about into'
).split(' ');
/** Words with characters outside ASCII (2 and 3 bytes in UTF-8), used sparingly. */
const ACCENTED = ['café', 'naïve', 'résumé', 'Zürich', 'São Paulo', 'Ångström', 'coöperate', '—', '€', '°C', 'µs', 'Ω', '…', '→'];

function sentence(random: Random, words: readonly string[], count: number, accented = 0): string {
  const out: string[] = [];
  for (let i = 0; i < count; i++) out.push(accented > 0 && random.chance(accented) ? random.pick(ACCENTED) : random.pick(words));
  const first = out[0]!;
  out[0] = first.charAt(0).toUpperCase() + first.slice(1);
  return `${out.join(' ')}.`;
}

// ---------------------------------------------------------------- the stand-ins

/** Case ids of a made-up conformance run: sections of subsections of cases. */
function caseIds(random: Random): string[] {
  const ids: string[] = [];
  for (let section = 1; section <= 13; section++) {
    const subsections = 1 + random.below(12);
    for (let sub = 1; sub <= subsections; sub++) {
      const count = 1 + random.below(20);
      for (let n = 1; n <= count; n++) ids.push(`${section}.${sub}.${n}`);
    }
  }
  return ids;
}

const AGENTS = ['EchoServer/1.0', 'ExampleWS/2.3', 'Relay/0.9', 'TestAgent/4.1', 'Sample/3.0.2', 'Gateway/1.12'];
const BEHAVIORS = ['OK', 'OK', 'OK', 'OK', 'OK', 'OK', 'NON-STRICT', 'INFORMATIONAL', 'FAILED', 'UNIMPLEMENTED'];
const CLOSE_CODES = [1000, 1000, 1000, 1001, 1002, 1007, 1009];

/** A file name from an agent and a case id, as conformance reports name their case files. */
const reportFile = (agent: string, id: string, extension: string): string =>
  `${agent.toLowerCase().replace(/[^a-z0-9]+/g, '_')}_case_${id.replaceAll('.', '_')}.${extension}`;

/** A conformance report index: agents, their case results, one object per case (very repetitive). */
function jsonDocument(size: number): Buffer {
  const random = new Random(0x6a736f6e);
  const ids = caseIds(random);
  const report: Record<string, Record<string, unknown>> = {};
  for (const agent of AGENTS) {
    const results: Record<string, unknown> = {};
    for (const id of ids) {
      const behavior = random.pick(BEHAVIORS);
      results[id] = {
        behavior,
        behaviorClose: behavior === 'FAILED' ? random.pick(['FAILED', 'UNCLEAN', 'WRONG CODE']) : 'OK',
        duration: random.chance(0.8) ? 1 + random.below(5) : random.below(5000),
        remoteCloseCode: random.pick(CLOSE_CODES),
        reportfile: reportFile(agent, id, 'json'),
      };
    }
    report[agent] = results;
  }
  const text = JSON.stringify(report, null, 3);
  if (Buffer.byteLength(text) < size) throw new Error('the JSON stand-in came out too small');
  return textOfSize(size, () => text);
}

function greyscaleBitmap(size: number): Buffer {
  const random = new Random(0x6c656e61);
  const width = 512;
  const height = 512;
  const header = 14 + 40;
  const palette = 256 * 4;
  const pixels = header + palette;
  const out = Buffer.alloc(size);
  // BITMAPFILEHEADER
  out.write('BM', 0, 'latin1');
  out.writeUInt32LE(size, 2);
  out.writeUInt32LE(pixels, 10);
  // BITMAPINFOHEADER: 8 bits per pixel, uncompressed, a 256-entry palette.
  out.writeUInt32LE(40, 14);
  out.writeInt32LE(width, 18);
  out.writeInt32LE(height, 22);
  out.writeUInt16LE(1, 26);
  out.writeUInt16LE(8, 28);
  out.writeUInt32LE(width * height, 34);
  out.writeUInt32LE(2835, 38);
  out.writeUInt32LE(2835, 42);
  out.writeUInt32LE(256, 46);
  for (let grey = 0; grey < 256; grey++) out.fill(grey, header + grey * 4, header + grey * 4 + 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const shade =
        110 +
        55 * Math.sin(x / 37) * Math.cos(y / 23) +
        35 * Math.sin((x + 2 * y) / 71) +
        (x - width / 2) / 8 +
        (Math.hypot(x - 300, y - 220) < 90 ? 40 : 0) +
        random.below(9) -
        4;
      out[pixels + y * width + x] = Math.max(0, Math.min(255, Math.round(shade)));
    }
  }
  return out;
}

const GERMAN = (
  'und der die das nicht ich du er sie es wir ihr mich mir dich dir sich auf mit dem den ein eine ' +
  'zu im so wie was wer wo nur noch doch schon ist bin bist sind war hat habe kann will soll muss ' +
  'Herz Geist Welt Nacht Licht Himmel Erde Seele Leben Liebe Gott Teufel Mensch Zeit Tag Traum Wort ' +
  'Kraft Blut Feuer Wasser Luft Buch Kunst Glück Schmerz Lust Freude Qual Brust Hand Auge Mund ' +
  'schön groß klein tief hoch süß bitter dunkel hell leer voll ewig heilig fremd müde stille ' +
  'über für schön Mädchen Türe Häuschen Brüder Väter Mütter Blüte Grüße fühlen hören möchte würde ' +
  'gehen stehen sehen sprechen suchen finden halten lassen kommen bleiben fliegen träumen weiß ' +
  'heißt Straße Fuß süße Schoß groß bloß draußen Maß Spaß'
).split(' ');
const SPEAKERS = ['FAUST', 'MEPHISTOPHELES', 'WAGNER', 'MARGARETE', 'MARTHE', 'CHOR', 'SCHÜLER', 'GEIST', 'HEXE'];

function verseDrama(size: number): Buffer {
  const random = new Random(0x66617573);
  return textOfSize(size, () => {
    const lines = [`${random.pick(SPEAKERS)}.`];
    const count = 1 + random.below(8);
    for (let i = 0; i < count; i++) {
      const line = sentence(random, GERMAN, 4 + random.below(5));
      const end = random.pick(['.', ',', '!', '?', ';', '.', ',']);
      lines.push(line.slice(0, -1) + end);
    }
    return `${lines.join('\n')}\n\n`;
  });
}

const STYLE = [
  'body { font-family: Segoe UI, Tahoma, Arial, sans-serif; font-size: 13px; color: #333; }',
  'table.results { border-collapse: collapse; margin: 20px 40px; }',
  'td.case_id { padding: 2px 8px; text-align: left; }',
  'td.case_ok { background-color: #0a0; color: #fff; text-align: center; }',
  'td.case_non_strict { background-color: #9a0; color: #fff; text-align: center; }',
  'td.case_failed { background-color: #900; color: #fff; text-align: center; }',
  'td.case_info { background-color: #4095bf; color: #fff; text-align: center; }',
  'td.close { font-size: 0.8em; color: #666; }',
  'p.case_desc, p.case_expect { margin: 4px 20px; padding: 16px; border-radius: 10px; }',
  'pre.wirelog { font-family: Consolas, "Courier New", monospace; font-size: 0.8em; }',
];
const CELL_CLASS: Readonly<Record<string, string>> = {
  OK: 'case_ok',
  'NON-STRICT': 'case_non_strict',
  INFORMATIONAL: 'case_info',
  FAILED: 'case_failed',
  UNIMPLEMENTED: 'case_info',
};

/** A conformance report page: a style sheet, then a table of case results with notes in prose. */
function htmlPage(size: number): Buffer {
  const random = new Random(0x68746d6c);
  const ids = caseIds(random);
  let index = 0;
  let started = false;
  return textOfSize(size, () => {
    if (!started) {
      started = true;
      return (
        '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n<title>Conformance report</title>\n' +
        `<style>\n${STYLE.join('\n\n')}\n</style>\n</head>\n<body>\n<table class="results">\n`
      );
    }
    const id = ids[index % ids.length]!;
    const agent = AGENTS[Math.floor(index / ids.length) % AGENTS.length]!;
    index++;
    const behavior = random.pick(BEHAVIORS);
    const anchor = id.replaceAll('.', '_');
    let row =
      `<tr>\n   <td class="case_id"><a href="#case_${anchor}">Case ${id}</a></td>\n` +
      `   <td class="${CELL_CLASS[behavior]}"><a href="${reportFile(agent, id, 'html')}">${behavior === 'OK' ? 'Pass' : behavior}</a></td>\n` +
      `   <td class="close">${random.pick(CLOSE_CODES)}</td>\n   <td class="duration">${1 + random.below(9)} ms</td>\n</tr>\n`;
    if (random.chance(0.02)) {
      row += `<tr><td colspan="4"><p class="case_desc">${sentence(random, ENGLISH, 8 + random.below(12), 0.15)}</p></td></tr>\n`;
    }
    return row;
  });
}

/** A PDF: page and font objects, some plain content streams, mostly compressed (random) streams. */
function pdfDocument(size: number): Buffer {
  const random = new Random(0x70646621);
  const pieces: Buffer[] = [Buffer.from('%PDF-1.4\n%\xe2\xe3\xcf\xd3\n', 'latin1')];
  let length = pieces[0]!.length;
  let object = 1;
  const push = (piece: Buffer): void => {
    pieces.push(piece);
    length += piece.length;
  };
  const text = (body: string): void => push(Buffer.from(`${object++} 0 obj\n${body}\nendobj\n`, 'latin1'));
  while (length < size) {
    const kind = random.below(10);
    if (kind < 2) {
      text(
        `<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents ${object + 1} 0 R ` +
          `/Resources << /Font << /F1 ${3 + random.below(9)} 0 R /F2 ${3 + random.below(9)} 0 R >> /ProcSet [/PDF /Text] >> >>`,
      );
    } else if (kind < 3) {
      text(`<< /Type /Font /Subtype /Type1 /BaseFont /${random.pick(['Times-Roman', 'Helvetica', 'Courier', 'Symbol'])} /Encoding /WinAnsiEncoding >>`);
    } else if (kind < 6) {
      // A page's text drawn with plain operators: lines of words at increasing heights.
      const lines: string[] = [];
      for (let y = 720; y > 72; y -= 12 + random.below(4)) lines.push(`BT /F1 10 Tf 72 ${y} Td (${sentence(random, ENGLISH, 6 + random.below(8))}) Tj ET`);
      const stream = lines.join('\n');
      text(`<< /Length ${stream.length} >>\nstream\n${stream}\nendstream`);
    } else {
      // Fonts and images are Flate streams: bytes that do not compress any further.
      const streamLength = 1024 + random.below(8 * 1024);
      const stream = Buffer.allocUnsafe(streamLength);
      for (let i = 0; i < streamLength; i += 4) stream.writeUInt32LE(random.next(), Math.min(i, streamLength - 4));
      push(Buffer.from(`${object++} 0 obj\n<< /Length ${streamLength} /Filter /FlateDecode >>\nstream\n`, 'latin1'));
      push(stream);
      push(Buffer.from('\nendstream\nendobj\n', 'latin1'));
    }
  }
  return Buffer.concat(pieces, length).subarray(0, size);
}

/** The five corpora, in the order of sections 12.1 to 12.5 (Autobahn's WS_COMPRESSION_TESTDATA_KEYS). */
export const CORPORA: readonly Corpus[] = [
  { key: 'json_data1', title: 'JSON report index', file: 'data1.json', size: 194_056, binary: false, generate: () => jsonDocument(194_056) },
  { key: 'lena512', title: '512x512 greyscale bitmap', file: 'lena512.bmp', size: 263_222, binary: true, generate: () => greyscaleBitmap(263_222) },
  {
    key: 'gutenberg_faust',
    title: 'German verse text (Faust I)',
    file: 'pg2229.txt',
    size: 222_218,
    binary: true,
    generate: () => verseDrama(222_218),
  },
  { key: 'html_data1', title: 'HTML report page', file: 'data1.html', size: 263_647, binary: false, generate: () => htmlPage(263_647) },
  { key: 'ooms', title: 'PDF document', file: '10.1.1.105.5439.pdf', size: 1_042_328, binary: true, generate: () => pdfDocument(1_042_328) },
];

// ---------------------------------------------------------------- loading and cutting

let testDataDirectory: string | null = null;
const loaded = new Map<string, CorpusData>();

/**
 * Use Autobahn's own files (its `autobahntestsuite/testdata` folder) instead of the stand-ins, or the
 * stand-ins again with null. Throws when a file is missing from the folder.
 */
export function useAutobahnTestData(directory: string | null): void {
  if (directory !== null) {
    const missing = CORPORA.map((corpus) => corpus.file).filter((file) => !existsSync(join(directory, file)));
    if (missing.length > 0) throw new Error(`${directory} does not have Autobahn's test data: ${missing.join(', ')} missing`);
  }
  testDataDirectory = directory;
  loaded.clear();
}

/** Where each character of UTF-8 text starts, plus the length at the end. */
function characterStarts(bytes: Buffer): Uint32Array {
  const starts: number[] = [];
  for (let i = 0; i < bytes.length; i++) if ((bytes[i]! & 0xc0) !== 0x80) starts.push(i);
  starts.push(bytes.length);
  return Uint32Array.from(starts);
}

/** The corpus's bytes (generated or read once per process) and its units. */
export function loadCorpus(corpus: Corpus): CorpusData {
  let data = loaded.get(corpus.key);
  if (data === undefined) {
    const bytes = testDataDirectory === null ? corpus.generate() : readFileSync(join(testDataDirectory, corpus.file));
    const starts = corpus.binary ? null : characterStarts(bytes);
    data = { bytes, units: starts === null ? bytes.length : starts.length - 1, characterStarts: starts };
    loaded.set(corpus.key, data);
  }
  return data;
}

/** Cuts consecutive messages from a corpus as Autobahn's `sendOne` does. */
export class Slicer {
  private readonly data: CorpusData;
  private position = 0;

  constructor(data: CorpusData) {
    this.data = data;
  }

  /** The next `length` units, wrapping around to the start of the corpus. */
  next(length: number): Buffer {
    const { bytes, units, characterStarts: starts } = this.data;
    if (length > units) throw new RangeError(`a message of ${length} units is longer than the corpus (${units})`);
    const byteAt = (unit: number): number => (starts === null ? unit : starts[unit]!);
    const from = this.position;
    const to = (from + length) % units;
    this.position = to;
    if (to > from) return bytes.subarray(byteAt(from), byteAt(to));
    return Buffer.concat([bytes.subarray(byteAt(from)), bytes.subarray(0, byteAt(to))]);
  }
}
