/** The part of fs-native-extensions (holepunchto) grpc-batch uses: OFD byte-range locks on Linux, flock on macOS. */
declare module 'fs-native-extensions' {
  /** Whole-file exclusive lock unless `shared`; false when another open file holds it. Never blocks. */
  export function tryLock(fd: number, options?: {shared?: boolean}): boolean;
  export function unlock(fd: number): void;
  const fsx: {tryLock: typeof tryLock; unlock: typeof unlock};
  export default fsx;
}
