#!/usr/bin/env node
// The entry stays tiny so that the daemon catches its signals from the first moment: the rest of
// the program (grpc-js, protobufjs, SQLite...) loads after this line, and a SIGHUP or SIGTERM sent
// while it loads is held and handled once the daemon is up, instead of killing it (exit 129).
import module from 'node:module';
import {holdStartupSignals} from './startup-signals.js';

if (process.argv[2] === 'daemon') holdStartupSignals();
// Node 22+ keeps V8's compiled code of the modules on disk, so the next start compiles less; Node 20 has no such API.
(module as {enableCompileCache?: () => unknown}).enableCompileCache?.();
await import('./main.js');
