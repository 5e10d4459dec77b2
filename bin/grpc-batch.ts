#!/usr/bin/env node
// The entry stays tiny so that the daemon catches its signals from the first moment: the rest of
// the program (grpc-js, protobufjs, SQLite...) loads after this line, and a SIGHUP or SIGTERM sent
// while it loads is held and handled once the daemon is up, instead of killing it (exit 129).
import {holdStartupSignals} from './startup-signals.js';

if (process.argv[2] === 'daemon') holdStartupSignals();
await import('./main.js');
