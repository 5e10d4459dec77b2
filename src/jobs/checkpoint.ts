/**
 * Which input records of a run are finished, compactly: a low-water mark (every record at or below
 * it is finished) plus the finished records above it. Records are read in line order and finish in
 * any order, so the part above the mark stays about as small as the number of calls in flight.
 */
export interface Checkpoint {
  /** Every record with a line number at or below this is finished. */
  readonly lowWater: number;
  /** Finished records above `lowWater`, ascending. */
  readonly doneAbove: readonly number[];
  /** Result lines in the results file, all on disk (the run adds it): `--resume` notices a results file moved away or cut short. */
  readonly results?: number;
}

export const EMPTY_CHECKPOINT: Checkpoint = {lowWater: 0, doneAbove: []};

export class ProgressTracker {
  #lowWater: number;
  /** Lines read above the mark, ascending, with whether each is finished. */
  #lines: number[] = [];
  #done: boolean[] = [];
  #head = 0;

  constructor(start: Checkpoint = EMPTY_CHECKPOINT) {
    this.#lowWater = start.lowWater;
    for (const line of start.doneAbove) {
      this.#lines.push(line);
      this.#done.push(true);
    }
    this.#advance();
  }

  /** A record was read (and will be finished later). Lines must come in ascending order. */
  read(line: number): void {
    this.#lines.push(line);
    this.#done.push(false);
  }

  /** A record read earlier is finished. */
  finish(line: number): void {
    // Binary search: the window is short, and mostly the line is near the head.
    let lo = this.#head;
    let hi = this.#lines.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const value = this.#lines[mid]!;
      if (value === line) {
        this.#done[mid] = true;
        if (mid === this.#head) this.#advance();
        return;
      }
      if (value < line) lo = mid + 1;
      else hi = mid - 1;
    }
  }

  snapshot(): Checkpoint {
    const doneAbove: number[] = [];
    for (let i = this.#head; i < this.#lines.length; i++) if (this.#done[i]) doneAbove.push(this.#lines[i]!);
    return {lowWater: this.#lowWater, doneAbove};
  }

  #advance(): void {
    while (this.#head < this.#lines.length && this.#done[this.#head]) {
      this.#lowWater = this.#lines[this.#head]!;
      this.#head++;
    }
    // Drop the finished prefix now and then, so the arrays do not grow with the input.
    if (this.#head > 4096 && this.#head * 2 > this.#lines.length) {
      this.#lines = this.#lines.slice(this.#head);
      this.#done = this.#done.slice(this.#head);
      this.#head = 0;
    }
  }
}

/** Whether a checkpoint says a line is finished. */
export function isFinished(checkpoint: Checkpoint, doneAbove: ReadonlySet<number>, line: number): boolean {
  return line <= checkpoint.lowWater || doneAbove.has(line);
}
