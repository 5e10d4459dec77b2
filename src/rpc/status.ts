import {status as Status} from '@grpc/grpc-js';

export {Status};

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
