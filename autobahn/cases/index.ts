/**
 * Every case of the conformance suite, in Autobahn's order, and the section titles (Autobahn's case
 * categories, shortened where Autobahn's are long).
 */
import type { ConformanceCase } from '../harness.ts';
import close from './close.ts';
import compression from './compression.ts';
import fragmentation from './fragmentation.ts';
import framing from './framing.ts';
import limits from './limits.ts';
import misc from './misc.ts';
import opcodes from './opcodes.ts';
import pings from './pings.ts';
import reservedBits from './reserved-bits.ts';
import utf8 from './utf8.ts';

export const SECTIONS: Readonly<Record<string, string>> = {
  '1': 'Framing',
  '2': 'Pings/Pongs',
  '3': 'Reserved Bits',
  '4': 'Opcodes',
  '5': 'Fragmentation',
  '6': 'UTF-8 Handling',
  '7': 'Close Handling',
  '9': 'Limits/Performance',
  '10': 'Misc',
  '12': 'Compression/Payloads',
  '13': 'Compression/Offers',
};

export const ALL_CASES: readonly ConformanceCase[] = [
  ...framing,
  ...pings,
  ...reservedBits,
  ...opcodes,
  ...fragmentation,
  ...utf8,
  ...close,
  ...limits,
  ...misc,
  ...compression,
];

/** The section a case id belongs to: `6.4.1` → `6`. */
export const sectionOf = (id: string): string => id.slice(0, id.indexOf('.'));
