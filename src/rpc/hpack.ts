import {H2_ERROR, H2ConnectionError} from './h2-frames.js';

/**
 * HPACK (RFC 7541) for the `h2` transport. The decoder is complete (dynamic table, Huffman with the
 * padding and EOS checks of section 5.2, table size updates and their limit, a header list size
 * limit that does not lose the table's state); every malformed block is an `H2ConnectionError`
 * with COMPRESSION_ERROR. The encoder side is what a client without encoder state needs: literals
 * without indexing (static-table names where there are some), so the peer's table size never matters.
 *
 * Why our own: the registry's `hpack` 1.0 has no Huffman EOS checks and no size limits and uses
 * `new Buffer()`; `hpack.js` 2.1 decodes through a readable stream at ~7 µs a block.
 */

/** RFC 7541 Appendix A. Index 1 is entry 0. */
export const STATIC_TABLE: readonly (readonly [string, string])[] = [
  [':authority', ''],
  [':method', 'GET'],
  [':method', 'POST'],
  [':path', '/'],
  [':path', '/index.html'],
  [':scheme', 'http'],
  [':scheme', 'https'],
  [':status', '200'],
  [':status', '204'],
  [':status', '206'],
  [':status', '304'],
  [':status', '400'],
  [':status', '404'],
  [':status', '500'],
  ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'],
  ['accept-language', ''],
  ['accept-ranges', ''],
  ['accept', ''],
  ['access-control-allow-origin', ''],
  ['age', ''],
  ['allow', ''],
  ['authorization', ''],
  ['cache-control', ''],
  ['content-disposition', ''],
  ['content-encoding', ''],
  ['content-language', ''],
  ['content-length', ''],
  ['content-location', ''],
  ['content-range', ''],
  ['content-type', ''],
  ['cookie', ''],
  ['date', ''],
  ['etag', ''],
  ['expect', ''],
  ['expires', ''],
  ['from', ''],
  ['host', ''],
  ['if-match', ''],
  ['if-modified-since', ''],
  ['if-none-match', ''],
  ['if-range', ''],
  ['if-unmodified-since', ''],
  ['last-modified', ''],
  ['link', ''],
  ['location', ''],
  ['max-forwards', ''],
  ['proxy-authenticate', ''],
  ['proxy-authorization', ''],
  ['range', ''],
  ['referer', ''],
  ['refresh', ''],
  ['retry-after', ''],
  ['server', ''],
  ['set-cookie', ''],
  ['strict-transport-security', ''],
  ['transfer-encoding', ''],
  ['user-agent', ''],
  ['vary', ''],
  ['via', ''],
  ['www-authenticate', ''],
];

/** The dynamic table size both ends start with (SETTINGS_HEADER_TABLE_SIZE's initial value). */
export const DEFAULT_TABLE_SIZE = 4096;
/** RFC 7541 section 4.1: an entry's size is its name and value lengths plus 32. */
export const ENTRY_OVERHEAD = 32;
/** Integers above this are refused (no header block needs more; it bounds the decoding loop). */
const MAX_INTEGER = 2 ** 31 - 1;

/**
 * Code lengths of the Huffman code of RFC 7541 Appendix B, symbols 0-255 and EOS (256). The code is
 * canonical (codes of one length are consecutive, in symbol order), so the lengths define it.
 */
const CODE_LENGTHS = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10,
  12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
  7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7,
  7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22,
  23, 23, 24, 22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22,
  23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20,
  24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30,
];
const EOS = 256;

/** The Huffman code of each symbol (canonical assignment from `CODE_LENGTHS`). */
export const HUFFMAN_CODES: readonly number[] = (() => {
  const order = CODE_LENGTHS.map((_, symbol) => symbol).sort((a, b) => CODE_LENGTHS[a]! - CODE_LENGTHS[b]! || a - b);
  const codes = new Array<number>(CODE_LENGTHS.length);
  let code = 0;
  let previous = CODE_LENGTHS[order[0]!]!;
  order.forEach((symbol, i) => {
    const length = CODE_LENGTHS[symbol]!;
    if (i > 0) code = (code + 1) * 2 ** (length - previous);
    codes[symbol] = code;
    previous = length;
  });
  return codes;
})();
export const HUFFMAN_LENGTHS: readonly number[] = CODE_LENGTHS;

/**
 * The decoding automaton: a state per inner node of the code tree (256 of them), read a nibble at
 * a time. Each entry packs the next state (bits 0-7), whether a symbol was completed (bit 8), the
 * symbol (bits 9-16), and whether EOS was read (bit 17). `ACCEPTS[state]`: the bits read since the
 * last symbol are a valid padding (fewer than 8, all ones).
 */
const {TRANSITIONS, ACCEPTS} = (() => {
  const children: number[][] = [[-1, -1]]; // inner nodes; a leaf is stored as -(symbol + 2)
  const depth = [0];
  const allOnes = [true];
  for (let symbol = 0; symbol <= EOS; symbol++) {
    const length = CODE_LENGTHS[symbol]!;
    const code = HUFFMAN_CODES[symbol]!;
    let node = 0;
    for (let bit = length - 1; bit >= 0; bit--) {
      const b = Math.floor(code / 2 ** bit) & 1;
      if (bit === 0) {
        children[node]![b] = -(symbol + 2);
        break;
      }
      let next = children[node]![b]!;
      if (next === -1) {
        next = children.length;
        children.push([-1, -1]);
        depth.push(depth[node]! + 1);
        allOnes.push(allOnes[node]! && b === 1);
        children[node]![b] = next;
      }
      node = next;
    }
  }
  const transitions = new Int32Array(children.length * 16);
  const accepts = new Uint8Array(children.length);
  for (let state = 0; state < children.length; state++) {
    accepts[state] = allOnes[state]! && depth[state]! < 8 ? 1 : 0;
    for (let nibble = 0; nibble < 16; nibble++) {
      let node = state;
      let entry = 0;
      for (let bit = 3; bit >= 0; bit--) {
        const child = children[node]![(nibble >> bit) & 1]!;
        if (child >= 0) {
          node = child;
          continue;
        }
        const symbol = -child - 2;
        if (symbol === EOS) entry |= 1 << 17;
        else entry |= (1 << 8) | (symbol << 9);
        node = 0;
      }
      transitions[state * 16 + nibble] = entry | node;
    }
  }
  return {TRANSITIONS: transitions, ACCEPTS: accepts};
})();

let scratch = Buffer.allocUnsafe(256);

/** Decodes a Huffman-coded string (latin1). Throws COMPRESSION_ERROR on EOS or bad padding. */
export function huffmanDecode(input: Buffer, start: number, end: number): string {
  const most = ((end - start) * 8) / 5 + 1;
  if (scratch.length < most) scratch = Buffer.allocUnsafe(Math.max(most, scratch.length * 2));
  let state = 0;
  let length = 0;
  for (let i = start; i < end; i++) {
    const byte = input[i]!;
    let entry = TRANSITIONS[state * 16 + (byte >> 4)]!;
    if (entry & (1 << 17)) throw compression('a Huffman string holds the EOS symbol');
    if (entry & (1 << 8)) scratch[length++] = (entry >> 9) & 0xff;
    state = entry & 0xff;
    entry = TRANSITIONS[state * 16 + (byte & 0xf)]!;
    if (entry & (1 << 17)) throw compression('a Huffman string holds the EOS symbol');
    if (entry & (1 << 8)) scratch[length++] = (entry >> 9) & 0xff;
    state = entry & 0xff;
  }
  if (!ACCEPTS[state]) throw compression('a Huffman string ends with invalid padding (more than 7 bits, or not the EOS prefix)');
  return scratch.toString('latin1', 0, length);
}

/** The Huffman code of a latin1 string. */
export function huffmanEncode(text: string): Buffer {
  let bits = 0;
  for (let i = 0; i < text.length; i++) bits += CODE_LENGTHS[text.charCodeAt(i) & 0xff]!;
  const out = Buffer.alloc(Math.ceil(bits / 8));
  let acc = 0; // pending bits, at most 7 + 30: kept below 2^53 as a number
  let pending = 0;
  let o = 0;
  for (let i = 0; i < text.length; i++) {
    const symbol = text.charCodeAt(i) & 0xff;
    const length = CODE_LENGTHS[symbol]!;
    acc = acc * 2 ** length + HUFFMAN_CODES[symbol]!;
    pending += length;
    while (pending >= 8) {
      pending -= 8;
      const byte = Math.floor(acc / 2 ** pending);
      out[o++] = byte;
      acc -= byte * 2 ** pending;
    }
  }
  if (pending > 0) out[o] = (acc * 2 ** (8 - pending)) | (0xff >> pending);
  return out;
}

function compression(message: string): H2ConnectionError {
  return new H2ConnectionError(H2_ERROR.COMPRESSION_ERROR, `HPACK: ${message}`);
}

/** What `HpackDecoder#decode` returns: `[name, value, name, value, ...]`, or `null` when the list is over the size limit. */
export type HeaderFields = string[];

/**
 * A connection's HPACK decoder. `maxTableSize` is the SETTINGS_HEADER_TABLE_SIZE this end
 * advertised: the most a table size update may ask for.
 */
export class HpackDecoder {
  readonly #limit: number;
  #maxSize: number;
  #size = 0;
  /** Dynamic table, oldest first: dynamic index 1 is the last entry. */
  #names: string[] = [];
  #values: string[] = [];
  #offset = 0;

  constructor(maxTableSize = DEFAULT_TABLE_SIZE) {
    this.#limit = maxTableSize;
    this.#maxSize = maxTableSize;
  }

  /** The dynamic table's size now (RFC 7541 section 4.1), for tests. */
  get tableSize(): number {
    return this.#size;
  }

  /** The dynamic table's entries, newest first, for tests. */
  get table(): [string, string][] {
    const out: [string, string][] = [];
    for (let i = this.#names.length - 1; i >= 0; i--) out.push([this.#names[i]!, this.#values[i]!]);
    return out;
  }

  /**
   * Decodes one complete header block. Returns the fields, or `null` when their size (RFC 9113
   * section 6.5.2) is above `maxListSize`: the block is still read to the end, so the table stays
   * in step with the peer's. Throws `H2ConnectionError` (COMPRESSION_ERROR) on a malformed block.
   */
  decode(block: Buffer, maxListSize = Infinity): HeaderFields | null {
    const fields: string[] = [];
    let listSize = 0;
    let tooLarge = false;
    let fieldSeen = false;
    this.#offset = 0;
    const end = block.length;
    while (this.#offset < end) {
      const first = block[this.#offset]!;
      let name: string;
      let value: string;
      if (first & 0x80) {
        const index = this.#integer(block, 7);
        if (index === 0) throw compression('indexed field with index 0');
        const entry = this.#entry(index);
        name = entry[0];
        value = entry[1];
      } else if ((first & 0xe0) === 0x20) {
        if (fieldSeen) throw compression('a dynamic table size update after a header field');
        const size = this.#integer(block, 5);
        if (size > this.#limit) throw compression(`a dynamic table size update to ${size}, above the ${this.#limit} allowed`);
        this.#maxSize = size;
        this.#evict(0);
        continue;
      } else {
        const indexing = (first & 0xc0) === 0x40;
        const index = this.#integer(block, indexing ? 6 : 4);
        name = index === 0 ? this.#string(block) : this.#entry(index)[0];
        value = this.#string(block);
        if (indexing) this.#insert(name, value);
      }
      fieldSeen = true;
      listSize += name.length + value.length + ENTRY_OVERHEAD;
      if (listSize > maxListSize) tooLarge = true;
      if (!tooLarge) fields.push(name, value);
    }
    return tooLarge ? null : fields;
  }

  #entry(index: number): readonly [string, string] {
    if (index <= STATIC_TABLE.length) return STATIC_TABLE[index - 1]!;
    const dynamic = index - STATIC_TABLE.length;
    const at = this.#names.length - dynamic;
    if (at < 0) throw compression(`index ${index} is past the end of the table (${STATIC_TABLE.length + this.#names.length} entries)`);
    return [this.#names[at]!, this.#values[at]!];
  }

  #insert(name: string, value: string): void {
    const size = name.length + value.length + ENTRY_OVERHEAD;
    if (size > this.#maxSize) {
      // RFC 7541 section 4.4: an entry larger than the table empties it and is not added.
      this.#names = [];
      this.#values = [];
      this.#size = 0;
      return;
    }
    this.#evict(size);
    this.#names.push(name);
    this.#values.push(value);
    this.#size += size;
  }

  /** Evicts the oldest entries until `room` more bytes fit. */
  #evict(room: number): void {
    let drop = 0;
    while (this.#size + room > this.#maxSize && drop < this.#names.length) {
      this.#size -= this.#names[drop]!.length + this.#values[drop]!.length + ENTRY_OVERHEAD;
      drop++;
    }
    if (drop > 0) {
      this.#names.splice(0, drop);
      this.#values.splice(0, drop);
    }
  }

  #integer(block: Buffer, prefixBits: number): number {
    const mask = (1 << prefixBits) - 1;
    let value = block[this.#offset++]! & mask;
    if (value < mask) return value;
    let shift = 0;
    for (;;) {
      if (this.#offset >= block.length) throw compression('an integer cut short by the end of the block');
      const byte = block[this.#offset++]!;
      value += (byte & 0x7f) * 2 ** shift;
      if (value > MAX_INTEGER) throw compression('an integer above 2^31-1');
      if ((byte & 0x80) === 0) return value;
      shift += 7;
    }
  }

  #string(block: Buffer): string {
    if (this.#offset >= block.length) throw compression('a string literal cut short by the end of the block');
    const huffman = (block[this.#offset]! & 0x80) !== 0;
    const length = this.#integer(block, 7);
    const start = this.#offset;
    const end = start + length;
    if (end > block.length) throw compression(`a string literal of ${length} bytes with only ${block.length - start} left in the block`);
    this.#offset = end;
    return huffman ? huffmanDecode(block, start, end) : block.toString('latin1', start, end);
  }
}

/** Appends an HPACK integer with an `prefixBits`-bit prefix; `flags` are the first byte's high bits. */
export function encodeInteger(out: number[], value: number, prefixBits: number, flags: number): void {
  const mask = (1 << prefixBits) - 1;
  if (value < mask) {
    out.push(flags | value);
    return;
  }
  out.push(flags | mask);
  let rest = value - mask;
  while (rest >= 0x80) {
    out.push((rest % 0x80) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  out.push(rest);
}

/** Appends a string literal, raw or Huffman-coded. */
export function encodeString(out: number[], text: string, huffman = false): void {
  const bytes = huffman ? huffmanEncode(text) : Buffer.from(text, 'latin1');
  encodeInteger(out, bytes.length, 7, huffman ? 0x80 : 0);
  for (const byte of bytes) out.push(byte);
}

const STATIC_NAME_INDEX = new Map<string, number>();
STATIC_TABLE.forEach(([name], i) => {
  if (!STATIC_NAME_INDEX.has(name)) STATIC_NAME_INDEX.set(name, i + 1);
});

/**
 * Appends a "literal header field without indexing" (RFC 7541 section 6.2.2), naming the field by
 * its static-table index when it has one. No encoder state: any peer decodes it whatever its table.
 */
export function encodeLiteral(out: number[], name: string, value: string): void {
  const index = STATIC_NAME_INDEX.get(name);
  if (index !== undefined) encodeInteger(out, index, 4, 0);
  else {
    out.push(0);
    encodeString(out, name);
  }
  encodeString(out, value);
}
