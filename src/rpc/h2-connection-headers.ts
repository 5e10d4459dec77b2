import {Flag, H2_ERROR, H2ConnectionError} from './h2-frames.js';

/** A header block (HEADERS + CONTINUATION) longer than this, or in more frames, ends the connection. */
export const MAX_HEADER_BLOCK_BYTES = 256 << 10;
export const MAX_CONTINUATIONS = 64;

/** A header block put back together from its frames. */
export interface HeaderBlock {
  readonly streamId: number;
  readonly endStream: boolean;
  readonly block: Buffer;
}

/**
 * A header block the server spreads over HEADERS and CONTINUATION frames (RFC 9113 section 6.10),
 * put back together within limits: a block over MAX_HEADER_BLOCK_BYTES or MAX_CONTINUATIONS frames
 * (a CONTINUATION flood) is ENHANCE_YOUR_CALM, a CONTINUATION out of place a PROTOCOL_ERROR.
 */
export class H2HeaderBlocks {
  #pending: {streamId: number; endStream: boolean; parts: Buffer[]; bytes: number; frames: number} | undefined;

  /** A block is waiting for its CONTINUATION frames: no other frame may come. */
  get inProgress(): boolean {
    return this.#pending !== undefined;
  }

  /** A HEADERS frame without END_HEADERS: its fragment is copied (the frame is a view of the socket's chunk). */
  begin(streamId: number, endStream: boolean, fragment: Buffer): void {
    this.#pending = {streamId, endStream, parts: [Buffer.from(fragment)], bytes: fragment.length, frames: 1};
  }

  /** A CONTINUATION frame: the whole block once END_HEADERS came, else undefined. */
  add(flags: number, streamId: number, payload: Buffer): HeaderBlock | undefined {
    const pending = this.#pending;
    if (!pending || pending.streamId !== streamId)
      throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'CONTINUATION without a header block in progress on its stream');
    pending.bytes += payload.length;
    pending.frames++;
    if (pending.bytes > MAX_HEADER_BLOCK_BYTES || pending.frames > MAX_CONTINUATIONS) {
      throw new H2ConnectionError(
        H2_ERROR.ENHANCE_YOUR_CALM,
        `a header block over ${MAX_HEADER_BLOCK_BYTES} bytes or ${MAX_CONTINUATIONS} frames`,
      );
    }
    pending.parts.push(Buffer.from(payload));
    if (!(flags & Flag.END_HEADERS)) return undefined;
    this.#pending = undefined;
    return {streamId, endStream: pending.endStream, block: Buffer.concat(pending.parts)};
  }
}
