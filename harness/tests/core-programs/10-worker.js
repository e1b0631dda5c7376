'use strict';
// Flags: --allow-natives-syntax
const { Worker, isMainThread } = require('worker_threads');
if (isMainThread) {
  const w = new Worker(__filename);
  w.on('exit', () => {});
  setInterval(() => {}, 1000);
} else {
  const crash = require('./oracle');
  function inWorker(depth) {
    if (depth === 0) return crash();
    return inWorker(depth - 1);
  }
  inWorker(3);
}
