/** The exit code a command asks for when it ends without an error; read by the entry, the one place that exits. */
let requested = 0;

export function setExitCode(code: number): void {
  requested = Math.max(requested, code);
}

export function requestedExitCode(): number {
  return requested;
}
