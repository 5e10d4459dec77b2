import type {status} from '@grpc/grpc-js';

/**
 * The gRPC status codes (fixed by the gRPC spec, doc/statuscodes.md), as grpc-js's `status` enum
 * has them, written out here so that parsing a status (`--only-status`, job keys) does not load
 * grpc-js: a CLI command that makes no call starts without it.
 */
export const Status = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const satisfies {readonly [K in keyof typeof status]: (typeof status)[K]};

const NAME_BY_CODE = new Map<number, string>();
const CODE_BY_NAME = new Map<string, number>();
for (const [name, code] of Object.entries(Status)) {
  if (typeof code === 'number') {
    NAME_BY_CODE.set(code, name);
    CODE_BY_NAME.set(name, code);
  }
}

/** `14` -> `UNAVAILABLE`; an unknown number prints as `CODE_42`. */
export function statusName(code: number): string {
  return NAME_BY_CODE.get(code) ?? `CODE_${code}`;
}

/** `UNAVAILABLE`, `unavailable`, `14` -> 14; undefined when it is not a status. */
export function parseStatus(value: unknown): number | undefined {
  if (typeof value === 'number') return NAME_BY_CODE.has(value) ? value : undefined;
  if (typeof value !== 'string') return undefined;
  if (/^\d+$/.test(value)) return parseStatus(Number(value));
  return CODE_BY_NAME.get(value.trim().toUpperCase());
}

export const STATUS_NAMES: readonly string[] = [...CODE_BY_NAME.keys()];
