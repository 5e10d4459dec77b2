import {isIP} from 'node:net';

/**
 * The summary's error rows: the failed records of one status grouped by message, in bounded
 * memory whatever the number of distinct messages.
 *
 * Messages are grouped by their template: the message with what differs from record to record
 * masked (the masking step of log template miners such as Drain3, as documented rules of our own):
 * - a UUID, a `0x` hex number, and a word that holds both letters and digits (`o17`, `u-17`,
 *   `req_9f2a`): `<id>` (proto's scalar type names such as `int32` and `base64`, `utf-8` are kept);
 * - an IP address, with or without a port (`127.0.0.1:50051`, `[::1]:443`), and `host:port`
 *   where the host has a dot or is `localhost`: `<address>`;
 * - an ISO timestamp: `<time>`;
 * - a duration (`5.001s`, `250ms`, `1m30s`, `3 seconds`): `<duration>`;
 * - any other number: `<n>`.
 * So `order o17 not found` and `order o18 not found` are one row, and so are grpc-js's
 * `Deadline exceeded after 5.000s,LB pick: 0.001s,remote_addr=127.0.0.1:50999` and its `5.001s`
 * twins. The rules are a pure function of the message, so groups counted apart (worker threads,
 * chunks on other machines, the records of a resumed run) merge exactly.
 *
 * grpc-js's per-phase timings of a deadline (`,LB pick: 0.001s`, present only when a phase took
 * time) are left out of the template.
 *
 * A status keeps at most `MAX_GROUPS` templates. Past them, a new template of 3 words or more that
 * differs from a kept one in one word only joins it, that word becoming `<*>` (Drain's clustering,
 * kept for when the rules above do not recognise an id: `user alice not found`); any other takes
 * the place of the least frequent (the least recently seen of those), whose records move to the
 * status's remainder (as the Space-Saving algorithm does for frequent items, with exact counts): a
 * message frequent late in a run still gets its row, and the rows of a status always add up to its
 * count.
 */

/** Templates kept per status: past them, records are counted in the status's remainder row. */
export const MAX_GROUPS = 100;
/** A message longer than this is grouped (and kept as an example) by its first characters only. */
const MAX_MESSAGE_CHARS = 1000;
/** The word of a joined template that differed (see `StatusErrors`). */
const WILDCARD = '<*>';
/** Shorter templates are never joined: one word of two is too much of the message. */
const MIN_WORDS_TO_JOIN = 3;

const UUID = /\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/gi;
const TIMESTAMP = /\b\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:?\d\d)?/g;
const BRACKETED_IPV6 = /\[[0-9A-Fa-f:.]+\](?::\d{1,5})?/g;
/** A word with dots and colons: an address when it is one (checked by `addressOf`). */
const ADDRESS_CANDIDATE = /(?<![\w.:-])[\w.:-]*[\w]/g;
const HOST_PORT = /^(.*?)((?:[A-Za-z0-9-]+\.)*[A-Za-z0-9-]+):(\d{1,5})$/;
const DURATION =
  /(?<![\w.])(?:(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+|\d+(?:\.\d+)? ?(?:nanoseconds?|microseconds?|milliseconds?|seconds?|secs?|minutes?|mins?|hours?))(?![\w])/g;
const HEX = /\b0x[0-9a-fA-F]+\b/g;
/** A word with a digit in it: a number, or an id when it also holds letters. */
const DIGIT_WORD = /(?<![\w.-])[\w-]*\d(?:[\w.-]*\w)?/g;
const NUMBER = /^[+-]?\d+(?:\.\d+)*$/;
/** grpc-js's timings of a deadline's phases (`,name resolution: <duration>`), once masked. */
const PHASE_TIMING = /,[A-Za-z][A-Za-z ]*: <duration>/g;
/** Words with digits that name a kind of thing rather than one thing. */
const KEPT_WORDS = new Set([
  'int32',
  'int64',
  'uint32',
  'uint64',
  'sint32',
  'sint64',
  'fixed32',
  'fixed64',
  'sfixed32',
  'sfixed64',
  'base64',
  'utf-8',
  'utf8',
  'utf-16',
  'utf-16le',
  'utf-16be',
  'http2',
  'h2',
  'x509',
  'ipv4',
  'ipv6',
]);

/** The message with what differs from record to record masked (see the rules above). */
export function messageTemplate(message: string): string {
  return cut(message)
    .replace(UUID, '<id>')
    .replace(TIMESTAMP, '<time>')
    .replace(BRACKETED_IPV6, '<address>')
    .replace(ADDRESS_CANDIDATE, addressOf)
    .replace(DURATION, '<duration>')
    .replace(HEX, '<id>')
    .replace(DIGIT_WORD, (word) => (NUMBER.test(word) ? '<n>' : KEPT_WORDS.has(word.toLowerCase()) ? word : '<id>'))
    .replace(PHASE_TIMING, '');
}

/** `127.0.0.1`, `::1`, `10.0.0.1:443`, `dns:db.internal:5432`: the address masked; any other word as it is. */
function addressOf(word: string): string {
  if (isIP(word)) return '<address>';
  const hostPort = HOST_PORT.exec(word);
  if (!hostPort) return word;
  const [, prefix, host, port] = hostPort as unknown as [string, string, string, string];
  if (Number(port) > 65_535) return word;
  return isIP(host) || host.includes('.') || host === 'localhost' ? `${prefix}<address>` : word;
}

function cut(message: string): string {
  return message.length <= MAX_MESSAGE_CHARS ? message : `${message.slice(0, MAX_MESSAGE_CHARS - 1)}…`;
}

/** One template of a status: how many records, and the first message seen (and whether others differed). */
export interface ErrorGroup {
  readonly template: string;
  /** The template's words, to compare with a new template. */
  readonly words: readonly string[];
  count: number;
  /** The first message of the group, as it came (cut to `MAX_MESSAGE_CHARS`). */
  readonly example: string;
  /** Whether the group holds messages other than `example`. */
  varied: boolean;
  /** When it was last counted (a tick of its `StatusErrors`). */
  seen: number;
}

/** The groups of one status, and the records past `MAX_GROUPS` templates. */
export class StatusErrors {
  readonly #groups = new Map<string, ErrorGroup>();
  /** Records whose template is not kept (see `MAX_GROUPS`). */
  remainder = 0;
  #tick = 0;

  get total(): number {
    let sum = this.remainder;
    for (const group of this.#groups.values()) sum += group.count;
    return sum;
  }

  /** Counts `count` records that ended with `message`. */
  add(message: string, count = 1): void {
    this.#add(messageTemplate(message), cut(message), false, count);
  }

  /** Adds another part's groups and remainder (a worker's, a chunk's). */
  merge(other: StatusErrors): void {
    for (const group of other.#groups.values()) this.#add(group.template, group.example, group.varied, group.count);
    this.remainder += other.remainder;
  }

  #add(template: string, example: string, varied: boolean, count: number): void {
    const seen = ++this.#tick;
    const group = this.#groups.get(template);
    if (group) {
      group.count += count;
      group.seen = seen;
      if (varied || example !== group.example) group.varied = true;
      return;
    }
    const words = template.split(' ');
    if (this.#groups.size >= MAX_GROUPS) {
      const joined = this.#join(words);
      if (joined) {
        joined.count += count;
        joined.seen = seen;
        joined.varied = true;
        return;
      }
      const evicted = this.#leastFrequent();
      this.#groups.delete(evicted.template);
      this.remainder += evicted.count;
    }
    this.#groups.set(template, {template, words, count, example, varied, seen});
  }

  /** A kept group the template's words match but for one word (made `<*>` in it), or undefined. */
  #join(words: readonly string[]): ErrorGroup | undefined {
    if (words.length < MIN_WORDS_TO_JOIN) return undefined;
    for (const group of this.#groups.values()) {
      if (group.words.length !== words.length) continue;
      let differs = -1;
      for (let i = 0; i < words.length && differs !== -2; i++) {
        if (group.words[i] !== words[i] && group.words[i] !== WILDCARD) differs = differs === -1 ? i : -2;
      }
      if (differs === -2) continue;
      if (differs === -1) return group;
      const joinedWords = group.words.map((word, i) => (i === differs ? WILDCARD : word));
      const template = joinedWords.join(' ');
      this.#groups.delete(group.template);
      const existing = this.#groups.get(template);
      if (existing) {
        existing.count += group.count;
        existing.varied = true;
        return existing;
      }
      const joined: ErrorGroup = {...group, template, words: joinedWords, varied: true};
      this.#groups.set(template, joined);
      return joined;
    }
    return undefined;
  }

  /** The group with the fewest records; of those, the one counted least recently. */
  #leastFrequent(): ErrorGroup {
    let least: ErrorGroup | undefined;
    for (const group of this.#groups.values()) {
      if (!least || group.count < least.count || (group.count === least.count && group.seen < least.seen)) least = group;
    }
    return least!;
  }

  /** The `top` most frequent groups, most frequent first (then in the order first seen). */
  top(top: number): ErrorGroup[] {
    return [...this.#groups.values()].sort((a, b) => b.count - a.count).slice(0, top);
  }
}
