import {existsSync} from 'node:fs';
import path from 'node:path';
import {fileURLToPath} from 'node:url';

/** The package's root folder (where package.json is), from src/ under tsx or dist/src/ once built. */
export const PACKAGE_ROOT: string = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('grpc-batch: cannot find package.json above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
  return dir;
})();

/** The demo service's proto, shipped in proto/. */
export const DEMO_PROTO = path.join(PACKAGE_ROOT, 'proto', 'demo', 'v1', 'demo.proto');
export const DEMO_METHOD = 'demo.v1.DemoService/Process';
