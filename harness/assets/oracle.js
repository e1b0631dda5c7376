'use strict';
// crosswind's oracle: prints V8's own view of the stack between markers so
// the harness can compare every frame with what crosswind unwinds.
//
//   crash()  records the stack, then aborts. The physical stack at the
//            abort holds crash() and every caller unchanged.
//   record() records the stack of its caller (without itself) and returns;
//            use it right before native code that aborts.
//
// The last record printed is the one compared.
Error.stackTraceLimit = Infinity;
// process.abort() is not available in worker threads; there the V8 runtime's
// %AbortJS aborts the calling thread (needs --allow-natives-syntax).
const { isMainThread } = require('worker_threads');
const realAbort = isMainThread ? process.abort : new Function('%AbortJS("crosswind-oracle")');
function print(stack) {
  process._rawDebug('CROSSWIND-ORACLE-BEGIN\n' + stack + '\nCROSSWIND-ORACLE-END');
}
function crash() {
  const stack = new Error('crosswind-oracle').stack;
  print(stack);
  realAbort();
}
function record() {
  const holder = {};
  Error.captureStackTrace(holder, record);
  print('Error: crosswind-oracle\n' + holder.stack.split('\n').slice(1).join('\n'));
}
module.exports = crash;
module.exports.crash = crash;
module.exports.record = record;
