'use strict';
// Records V8's own view of the stack, then aborts. The physical stack at the
// abort holds crash() at the realAbort() line and every caller unchanged, so
// every frame below crash() is compared exactly against V8's stack.
Error.stackTraceLimit = Infinity;
// process.abort() is not available in worker threads; there the V8
// runtime's %AbortJS aborts the calling thread (needs --allow-natives-syntax).
const { isMainThread } = require('worker_threads');
const realAbort = isMainThread ? process.abort : new Function('%AbortJS("crosswind-oracle")');
function crash() {
  const stack = new Error('crosswind-oracle').stack;
  process._rawDebug('CROSSWIND-ORACLE-BEGIN\n' + stack + '\nCROSSWIND-ORACLE-END');
  realAbort();
}
module.exports = crash;
