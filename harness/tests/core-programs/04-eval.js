'use strict';
const crash = require('./oracle');
globalThis.crashFromEval = crash;
const fn = new Function('a', 'b', 'return crashFromEval(a + b);');
function runEval() {
  return eval('(function evaluated() { return fn(1, 2); })()');
}
runEval();
