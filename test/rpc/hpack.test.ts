import assert from 'node:assert/strict';
import {test} from 'node:test';
import fc from 'fast-check';
import {H2ConnectionError, H2_ERROR} from '../../src/rpc/h2-frames.js';
import {
  ENTRY_OVERHEAD,
  encodeInteger,
  encodeString,
  HpackDecoder,
  huffmanDecode,
  huffmanEncode,
  HUFFMAN_CODES,
  HUFFMAN_LENGTHS,
  STATIC_TABLE,
} from '../../src/rpc/hpack.js';

/** The HPACK decoder: RFC 7541 Appendix C as fixed cases, then properties against a reference encoder. */

const hex = (text: string) => Buffer.from(text.replace(/\s+/g, ''), 'hex');
const pairs = (fields: string[] | null) => {
  assert.ok(fields);
  const out: [string, string][] = [];
  for (let i = 0; i < fields.length; i += 2) out.push([fields[i]!, fields[i + 1]!]);
  return out;
};

test('the Huffman code is RFC 7541 Appendix B (spot checks across every code length)', () => {
  const expected: [number, number, number][] = [
    [0, 0x1ff8, 13],
    [1, 0x7fffd8, 23],
    [9, 0xffffea, 24],
    [10, 0x3ffffffc, 30],
    [36, 0x1ff9, 13],
    [48, 0x0, 5],
    [60, 0x7ffc, 15],
    [92, 0x7fff0, 19],
    [124, 0x7fc, 11],
    [127, 0xffffffc, 28],
    [128, 0xfffe6, 20],
    [153, 0x1fffdc, 21],
    [192, 0x3ffffe0, 26],
    [199, 0x1ffffec, 25],
    [203, 0x7ffffde, 27],
    [255, 0x3ffffee, 26],
    [256, 0x3fffffff, 30],
  ];
  for (const [symbol, code, length] of expected)
    assert.deepEqual([HUFFMAN_CODES[symbol], HUFFMAN_LENGTHS[symbol]], [code, length], `symbol ${symbol}`);
});

test('RFC 7541 C.2: one representation of each kind', () => {
  const decoder = new HpackDecoder();
  assert.deepEqual(pairs(decoder.decode(hex('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572'))), [
    ['custom-key', 'custom-header'],
  ]);
  assert.equal(decoder.tableSize, 55);
  const plain = new HpackDecoder();
  assert.deepEqual(pairs(plain.decode(hex('040c 2f73 616d 706c 652f 7061 7468'))), [[':path', '/sample/path']]);
  assert.deepEqual(pairs(plain.decode(hex('1008 7061 7373 776f 7264 0673 6563 7265 74'))), [['password', 'secret']]);
  assert.deepEqual(pairs(plain.decode(hex('82'))), [[':method', 'GET']]);
  assert.equal(plain.tableSize, 0);
});

test('RFC 7541 C.3 and C.4: three requests sharing a dynamic table, without and with Huffman', () => {
  for (const blocks of [
    [
      '8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d',
      '8286 84be 5808 6e6f 2d63 6163 6865',
      '8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65',
    ],
    [
      '8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff',
      '8286 84be 5886 a8eb 1064 9cbf',
      '8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf',
    ],
  ]) {
    const decoder = new HpackDecoder();
    assert.deepEqual(pairs(decoder.decode(hex(blocks[0]!))), [
      [':method', 'GET'],
      [':scheme', 'http'],
      [':path', '/'],
      [':authority', 'www.example.com'],
    ]);
    assert.equal(decoder.tableSize, 57);
    assert.deepEqual(pairs(decoder.decode(hex(blocks[1]!))), [
      [':method', 'GET'],
      [':scheme', 'http'],
      [':path', '/'],
      [':authority', 'www.example.com'],
      ['cache-control', 'no-cache'],
    ]);
    assert.equal(decoder.tableSize, 110);
    assert.deepEqual(pairs(decoder.decode(hex(blocks[2]!))), [
      [':method', 'GET'],
      [':scheme', 'https'],
      [':path', '/index.html'],
      [':authority', 'www.example.com'],
      ['custom-key', 'custom-value'],
    ]);
    assert.equal(decoder.tableSize, 164);
    assert.deepEqual(decoder.table, [
      ['custom-key', 'custom-value'],
      ['cache-control', 'no-cache'],
      [':authority', 'www.example.com'],
    ]);
  }
});

test('RFC 7541 C.6: responses with Huffman in a 256-byte table, with eviction', () => {
  const decoder = new HpackDecoder(256);
  const date = 'Mon, 21 Oct 2013 20:13:21 GMT';
  assert.deepEqual(
    pairs(
      decoder.decode(
        hex(
          '4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3',
        ),
      ),
    ),
    [
      [':status', '302'],
      ['cache-control', 'private'],
      ['date', date],
      ['location', 'https://www.example.com'],
    ],
  );
  assert.equal(decoder.tableSize, 222);
  assert.deepEqual(pairs(decoder.decode(hex('4883 640e ffc1 c0bf'))), [
    [':status', '307'],
    ['cache-control', 'private'],
    ['date', date],
    ['location', 'https://www.example.com'],
  ]);
  assert.equal(decoder.tableSize, 222);
  assert.deepEqual(decoder.table[0], [':status', '307']);
  assert.equal(decoder.table.length, 4, '(:status, 302) was evicted');
});

const COMPRESSION = (e: unknown) => e instanceof H2ConnectionError && e.code === H2_ERROR.COMPRESSION_ERROR;

/** A literal without indexing, name "a", whose value is these Huffman bytes; as hex. */
function huffmanLiteral(coded: Buffer): string {
  const out: number[] = [0, 1, 0x61];
  encodeInteger(out, coded.length, 7, 0x80);
  return Buffer.concat([Buffer.from(out), coded]).toString('hex');
}

/** 'a' is 5 bits and 3 bits of padding (111): the last one made 0. */
function zeroLastBit(coded: Buffer): Buffer {
  const copy = Buffer.from(coded);
  copy[copy.length - 1]! &= 0xfe;
  return copy;
}

test('malformed blocks are COMPRESSION_ERROR: index 0 or past the table, a size update above the limit or after a field, bad Huffman padding, EOS, a cut string', () => {
  const cases: [string, RegExp][] = [
    ['80', /index 0/],
    ['be', /past the end of the table/],
    ['3fe21f', /above the 4096 allowed/],
    ['82 20', /size update after a header field/],
    [huffmanLiteral(Buffer.concat([huffmanEncode('abc'), Buffer.from([0xff])])), /invalid padding/], // 8 bits or more of padding
    [huffmanLiteral(zeroLastBit(huffmanEncode('a'))), /invalid padding/], // padding that is not the EOS prefix
    [huffmanLiteral(Buffer.from([0xff, 0xff, 0xff, 0xff])), /EOS/],
    ['000a 6162', /only 2 left/],
    ['0fffffffffff7f', /above 2\^31-1|cut short/],
  ];
  for (const [bytes, message] of cases) {
    assert.throws(
      () => new HpackDecoder().decode(hex(bytes)),
      (e: unknown) => COMPRESSION(e) && message.test((e as Error).message),
      bytes,
    );
  }
});

test('a header list over the limit returns null, and the table keeps in step (the next block still decodes)', () => {
  const decoder = new HpackDecoder();
  const big: number[] = [];
  encodeInteger(big, 0, 6, 0x40);
  encodeString(big, 'x-big');
  encodeString(big, 'v'.repeat(1000));
  assert.equal(decoder.decode(Buffer.from(big), 500), null);
  assert.deepEqual(
    pairs(decoder.decode(hex('be'), 5000)),
    [['x-big', 'v'.repeat(1000)]],
    'the entry was added though the list was refused',
  );
});

/** A reference encoder with its own dynamic table: every representation, Huffman or not, size updates. */
class ReferenceEncoder {
  table: [string, string][] = [];
  size = 0;
  maxSize = 4096;

  encode(fields: [string, string][], choices: {kind: number; huffman: boolean}[], sizeUpdate: number | undefined): Buffer {
    const out: number[] = [];
    if (sizeUpdate !== undefined) {
      encodeInteger(out, sizeUpdate, 5, 0x20);
      this.maxSize = sizeUpdate;
      this.evict(0);
    }
    fields.forEach(([name, value], i) => {
      const {kind, huffman} = choices[i % choices.length]!;
      const exact = this.find((n, v) => n === name && v === value);
      if (kind === 0 && exact) return encodeInteger(out, exact, 7, 0x80);
      const named = this.find((n) => n === name);
      const flags = kind === 1 || kind === 0 ? 0x40 : kind === 2 ? 0x00 : 0x10;
      const prefix = flags === 0x40 ? 6 : 4;
      if (named) encodeInteger(out, named, prefix, flags);
      else {
        encodeInteger(out, 0, prefix, flags);
        encodeString(out, name, huffman);
      }
      encodeString(out, value, huffman);
      if (flags === 0x40) this.insert(name, value);
    });
    return Buffer.from(out);
  }

  find(match: (name: string, value: string) => boolean): number | undefined {
    const s = STATIC_TABLE.findIndex(([n, v]) => match(n, v));
    if (s >= 0) return s + 1;
    const d = this.table.findIndex(([n, v]) => match(n, v));
    return d >= 0 ? STATIC_TABLE.length + d + 1 : undefined;
  }

  insert(name: string, value: string): void {
    const size = name.length + value.length + ENTRY_OVERHEAD;
    if (size > this.maxSize) {
      this.table = [];
      this.size = 0;
      return;
    }
    this.evict(size);
    this.table.unshift([name, value]);
    this.size += size;
  }

  evict(room: number): void {
    while (this.size + room > this.maxSize && this.table.length > 0) {
      const [n, v] = this.table.pop()!;
      this.size -= n.length + v.length + ENTRY_OVERHEAD;
    }
  }
}

const latin1 = (max: number) => fc.array(fc.integer({min: 0, max: 255}), {maxLength: max}).map((codes) => String.fromCharCode(...codes));
const headerName = fc.oneof(
  fc.constantFrom(...STATIC_TABLE.map(([n]) => n), 'grpc-status', 'grpc-message', 'x-a', 'x-b-bin'),
  fc.stringMatching(/^[a-z0-9-]{1,20}$/),
);
const field = fc.tuple(headerName, fc.oneof(fc.constantFrom('', '0', 'application/grpc', 'identity'), latin1(40)));

test('property: random header lists through the reference encoder decode to the same lists, block after block', () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          fields: fc.array(field, {maxLength: 12}),
          choices: fc.array(fc.record({kind: fc.integer({min: 0, max: 3}), huffman: fc.boolean()}), {minLength: 1, maxLength: 5}),
          sizeUpdate: fc.option(fc.integer({min: 0, max: 4096}), {nil: undefined}),
        }),
        {minLength: 1, maxLength: 8},
      ),
      (blocks) => {
        const encoder = new ReferenceEncoder();
        const decoder = new HpackDecoder();
        for (const {fields, choices, sizeUpdate} of blocks) {
          const decoded = decoder.decode(encoder.encode(fields, choices, sizeUpdate));
          assert.deepEqual(pairs(decoded), fields);
          assert.equal(decoder.tableSize, encoder.size);
        }
      },
    ),
    {numRuns: 300},
  );
});

test('property: Huffman round-trips any latin1 string', () => {
  fc.assert(
    fc.property(latin1(200), (text) => {
      const coded = huffmanEncode(text);
      assert.equal(huffmanDecode(coded, 0, coded.length), text);
    }),
    {numRuns: 500},
  );
});

test('property: arbitrary bytes never make the decoder throw anything but a COMPRESSION_ERROR', () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({maxLength: 64}), {minLength: 1, maxLength: 4}), (blocks) => {
      const decoder = new HpackDecoder();
      for (const block of blocks) {
        try {
          decoder.decode(Buffer.from(block), 1000);
        } catch (error) {
          assert.ok(COMPRESSION(error), String(error));
          return;
        }
      }
    }),
    {numRuns: 2000},
  );
});
