import {MessageError} from '../rpc/message.js';
import type {MethodHandle} from '../rpc/method.js';
import type {InputRecord} from './input.js';

/** Parses and encodes one record; returns the request bytes, or why the record is invalid. */
export function prepareRecord(record: InputRecord, method: MethodHandle): Buffer | string {
  if (record.error) return record.error;
  let value = record.value;
  if (value === undefined) {
    try {
      value = JSON.parse(record.text);
    } catch (error) {
      return `expected a JSON object, got text that is not JSON: ${(error as Error).message}`;
    }
  }
  try {
    return method.encodeRequest(value);
  } catch (error) {
    if (error instanceof MessageError) return error.message;
    return `does not encode as ${method.requestType}: ${(error as Error).message}`;
  }
}
